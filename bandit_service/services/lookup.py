"""Finding an experiment by key for a use case: the one place that turns "no such key" into a 404."""

from __future__ import annotations

from bandit_service.core.errors import NotFoundError
from bandit_service.core.model import Experiment
from bandit_service.ports import Storage

__all__ = ["load_experiment"]


async def load_experiment(storage: Storage, key: str) -> Experiment:
    """The experiment with this key, read from storage (not a cache); NotFoundError naming `key`."""
    experiment = await storage.experiment(key)
    if experiment is None:
        raise NotFoundError(f"no experiment with key {key!r}", field="key")
    return experiment
