"""Storage: SQLite (one node, one file, the default) or PostgreSQL (several nodes) for the shared
stores, through one layer (engine.py, migrate.py, open.py); see README, "Several nodes"."""
