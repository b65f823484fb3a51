"""Multi-process tests: real `bandit-service serve` replicas on one database (SQLite file or PostgreSQL)."""
