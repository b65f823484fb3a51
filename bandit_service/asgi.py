"""The ASGI entry point: `uvicorn bandit_service.asgi:app` (the only module that reads os.environ)."""

from __future__ import annotations

import os

from bandit_service.app import create_app
from bandit_service.settings import Settings

__all__ = ["app"]

app = create_app(Settings.from_env(os.environ))
