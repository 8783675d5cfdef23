"""The pure API core: models of every kind, defaults, admission rules and CRD schemas. No I/O here."""
