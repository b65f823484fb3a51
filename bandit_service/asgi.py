"""The ASGI entry point: `uvicorn bandit_service.asgi:app` (the only module that reads os.environ)."""

from __future__ import annotations

import gc
import os

from bandit_service.app import create_app
from bandit_service.settings import Settings

__all__ = ["app"]

app = create_app(Settings.from_env(os.environ))

# Move the objects of the imported modules and the app (hundreds of thousands) out of the
# collector's reach: a full collection scanning them paused the event loop long enough to set
# the p99 latency under load (the README's HTTP load benchmark shows the latencies).
gc.collect()
gc.freeze()
