"""HTTP handlers: thin functions from wire Structs to one domain service call."""

from litestar.types import ControllerRouterHandler

from bandit_service.http.routes.decision_log import log_decision_batch
from bandit_service.http.routes.decisions import decide
from bandit_service.http.routes.definitions import read_definitions
from bandit_service.http.routes.experiments import ExperimentController
from bandit_service.http.routes.features import FeatureController
from bandit_service.http.routes.health import healthz, livez, readyz
from bandit_service.http.routes.keys import KeyController
from bandit_service.http.routes.reports import read_report
from bandit_service.http.routes.rewards import record_reward, record_reward_batch
from bandit_service.http.routes.rollouts import RolloutController
from bandit_service.http.routes.timeseries import read_timeseries
from bandit_service.http.routes.webhooks import WebhookController

__all__ = [
    "ROUTES",
    "ExperimentController",
    "FeatureController",
    "KeyController",
    "RolloutController",
    "WebhookController",
    "decide",
    "healthz",
    "livez",
    "log_decision_batch",
    "read_definitions",
    "read_report",
    "read_timeseries",
    "readyz",
    "record_reward",
    "record_reward_batch",
]

ROUTES: list[ControllerRouterHandler] = [
    ExperimentController,
    FeatureController,
    RolloutController,
    WebhookController,
    KeyController,
    decide,
    log_decision_batch,
    read_definitions,
    record_reward,
    record_reward_batch,
    healthz,
    livez,
    readyz,
    read_report,
    read_timeseries,
]
