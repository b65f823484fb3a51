"""Runnable benchmarks: policy regret (benchmarks.regret) and HTTP load (benchmarks.http_load)."""

__all__: list[str] = []
