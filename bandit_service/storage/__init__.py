"""Storage: the `ports.Storage` implementations (SQL on SQLite or PostgreSQL, and the in-memory twin)."""

__all__: list[str] = []
