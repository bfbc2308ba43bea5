"""Embedded storage: SQLite in WAL mode, one file (storage.database in flexvoice.yaml)."""
