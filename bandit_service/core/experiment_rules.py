"""Cross-field rules of an experiment's configuration, and its policy bound to the experiment."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from bandit_service.core.automation import Automation
from bandit_service.core.errors import InvalidFieldError
from bandit_service.core.fields import MetricName
from bandit_service.core.json_limits import free_json_problem
from bandit_service.core.model import (
    Arm,
    ExperimentConfig,
)
from bandit_service.core.plans import PlanError, PlanStep, validate_plan
from bandit_service.core.reporting.inputs import MAX_GUARDRAILS, PRIMARY
from bandit_service.core.targeting import check_targeting
from bandit_service.core.timestamps import to_datetime
from bandit_service.core.trials import MissingValue
from policies import ConfigError, PolicyConfig, validate_weights

__all__ = [
    "MAX_GUARDRAILS",
    "bound_policy",
    "check_analysis",
    "check_config",
    "check_end",
    "initial_weights",
    "with_missing",
]


def check_config(arms: Sequence[Arm], config: ExperimentConfig) -> None:
    """Refuse a configuration whose parts do not fit together, naming the field."""
    names = [arm.name for arm in arms]
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise InvalidFieldError(f"duplicate arm name {name!r}; arm names must be unique", field=f"arms[{i}].name")
        seen.add(name)
    for i, arm in enumerate(arms):
        problem = free_json_problem(arm.payload)
        if problem is not None:
            raise InvalidFieldError(f"payload: {problem}", field=f"arms[{i}].payload")
    given = [arm.weight for arm in arms if arm.weight is not None]
    if given and len(given) != len(arms):
        raise InvalidFieldError("give a weight for every arm or for none (equal split)", field="arms[].weight")
    if given:
        try:
            validate_weights(given, name="arms[].weight")
        except ValueError as exc:
            raise InvalidFieldError(str(exc), field="arms[].weight") from exc
    if config.control not in seen:
        raise InvalidFieldError(f"control {config.control!r} is not one of the arms {names}", field="control")
    check_targeting(config.targeting)
    _check_trials(config)
    if config.reward == "bernoulli" and config.default_reward not in (0.0, 1.0):
        raise InvalidFieldError(
            f"a bernoulli experiment's default_reward (missing.value) must be 0 or 1, got {config.default_reward}",
            field="default_reward",
        )
    try:
        config.policy.check_arms(len(arms), weighted_arms=bool(given))
        bound_policy(config, ())  # the reward kind may not fit the policy
    except ConfigError as exc:
        # The one place where the library's parameter errors become the API's field errors.
        raise InvalidFieldError(str(exc), field=f"policy.{exc.field}") from exc
    check_analysis(config)
    _check_automation(config.automation)


def _check_automation(automation: Automation | None) -> None:
    """A ship plan needs `on_ship`, and is a completion plan (POST .../complete's rules) that ends at share 1."""
    if automation is None or automation.ship_plan is None:
        return
    if automation.on_ship is None:
        raise InvalidFieldError(
            'automation.ship_plan needs automation.on_ship "complete" (the plan is how a ship completes)',
            field="automation.ship_plan",
        )
    steps = automation.ship_plan
    try:
        validate_plan([PlanStep(s.share, s.hold_s) for s in steps], "automation.ship_plan", "share")
    except PlanError as exc:
        raise InvalidFieldError(str(exc), field=exc.field) from exc
    if steps[-1].share != 1.0:
        field = f"automation.ship_plan[{len(steps) - 1}].share"
        raise InvalidFieldError(
            f"{field}: the last step of a ship plan gives the winner all traffic (share 1), got {steps[-1].share}",
            field=field,
        )


def check_end(config: ExperimentConfig, before: ExperimentConfig | None, started_at: float | None, now: float) -> None:
    """Refuse a new or changed end that has already passed: the experiment would end at the next tick."""
    ends_at = config.ends_at
    if ends_at is not None and (before is None or ends_at != before.ends_at) and ends_at <= now:
        raise InvalidFieldError(
            f"ends_at {to_datetime(ends_at).isoformat()} is not in the future (now {to_datetime(now).isoformat()})",
            field="ends_at",
        )
    limit = config.max_duration_s
    changed = before is None or limit != before.max_duration_s
    if limit is not None and changed and started_at is not None and started_at + limit <= now:
        raise InvalidFieldError(
            f"max_duration_s {limit} counts from the first start at {to_datetime(started_at).isoformat()} "
            f"and has already passed (now {to_datetime(now).isoformat()})",
            field="max_duration_s",
        )


def with_missing(config: ExperimentConfig, *, given_default: bool) -> ExperimentConfig:
    """The config with `default_reward` equal to `missing`'s value (one number, two names for it).

    `given_default`: the request also set `default_reward`; a different `missing` value is refused.
    """
    value = config.missing.value if isinstance(config.missing, MissingValue) else None
    if value is None or value == config.default_reward:
        return config
    if given_default:
        raise InvalidFieldError(
            f"missing.value ({value}) and default_reward ({config.default_reward}) disagree; give one of them",
            field="missing",
        )
    return msgspec.structs.replace(config, default_reward=value)


def _check_trials(config: ExperimentConfig) -> None:
    if config.trial == "unit" and not config.sticky:
        raise InvalidFieldError(
            'trial "unit" needs a sticky experiment (a unit keeps its arm for its trial); '
            'use trial "decision" with sticky false',
            field="trial",
        )
    if config.reward == "bernoulli" and config.aggregate in ("sum", "mean"):
        raise InvalidFieldError(
            f'a bernoulli experiment\'s trial is 0 or 1: aggregate "max" (converted at least once) or "last", '
            f"not {config.aggregate!r}",
            field="aggregate",
        )


def _check_metric(name: str, field: str) -> None:
    if name == PRIMARY:
        return
    try:
        msgspec.convert(name, MetricName)
    except msgspec.ValidationError as exc:
        raise InvalidFieldError(
            f"{name!r} is not a metric name (letters, digits, _.:- and 64 characters at most): {exc}", field=field
        ) from exc


def check_analysis(config: ExperimentConfig) -> None:
    """Refuse decision criteria and sample-size settings the report could not use, naming the field."""
    if config.minimum_detectable_effect is not None and config.minimum_detectable_effect == 0:
        raise InvalidFieldError("minimum_detectable_effect: must be non-zero", field="minimum_detectable_effect")
    criteria = config.criteria
    if criteria is None:
        return
    _check_metric(criteria.primary.metric, "criteria.primary.metric")
    if len(criteria.guardrails) > MAX_GUARDRAILS:
        raise InvalidFieldError(
            f"at most {MAX_GUARDRAILS} guardrails, got {len(criteria.guardrails)}", field="criteria.guardrails"
        )
    seen: set[tuple[str, str]] = set()
    for i, guardrail in enumerate(criteria.guardrails):
        _check_metric(guardrail.metric, f"criteria.guardrails[{i}].metric")
        key = (guardrail.metric, guardrail.bound[0])
        if key in seen:
            raise InvalidFieldError(
                f"a second {guardrail.bound[0]} guardrail on {guardrail.metric!r}", field=f"criteria.guardrails[{i}]"
            )
        seen.add(key)


def initial_weights(arms: Sequence[Arm], policy: PolicyConfig) -> tuple[float, ...]:
    """The weights an experiment starts with: the arms' weights if given, else the policy's (an equal split)."""
    if all(arm.weight is not None for arm in arms):
        return tuple(float(arm.weight) for arm in arms if arm.weight is not None)
    return policy.initial_weights(len(arms))


def bound_policy(config: ExperimentConfig, weights: Sequence[float]) -> PolicyConfig:
    """The experiment's policy with its reward kind and current weights (empty while a draft)."""
    return config.policy.bind(reward=config.reward, weights=tuple(weights))
