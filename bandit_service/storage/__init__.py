"""Storage: SQLModel tables behind the `Repository` and `Transaction` protocols."""

__all__: list[str] = []
