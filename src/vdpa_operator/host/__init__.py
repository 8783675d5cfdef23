"""The Host port (`port`), its value types and errors, and two adapters: `linux` (the real kernel) and `sim`
(a simulated ConnectX-6 Dx host)."""
