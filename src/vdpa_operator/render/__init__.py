"""Pure rendering: policies × nodes × observed NICs → what the operator writes (node specs, device-plugin config)."""
