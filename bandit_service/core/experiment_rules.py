"""Cross-field rules of an experiment's configuration, and the map from wire policy to policy config."""

from __future__ import annotations

from collections.abc import Sequence
from typing import assert_never

import msgspec

from bandit_service.core.errors import InvalidFieldError
from bandit_service.core.fields import MetricName
from bandit_service.core.json_limits import free_json_problem
from bandit_service.core.model import (
    Arm,
    EpsilonGreedyPolicy,
    ExperimentConfig,
    FixedPolicy,
    PolicySpec,
    ThompsonPolicy,
)
from bandit_service.core.reporting.inputs import PRIMARY
from policies import EpsilonGreedy, FixedSplit, PolicyConfig, ThompsonSampling, validate_weights

__all__ = ["MAX_GUARDRAILS", "check_analysis", "check_config", "initial_weights", "is_adaptive", "policy_config"]

MAX_GUARDRAILS = 20


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
    if config.reward == "bernoulli" and config.default_reward not in (0.0, 1.0):
        raise InvalidFieldError(
            f"a bernoulli experiment's default_reward must be 0 or 1, got {config.default_reward}",
            field="default_reward",
        )
    policy = config.policy
    if isinstance(policy, EpsilonGreedyPolicy | ThompsonPolicy) and policy.min_weight * len(arms) > 1.0 + 1e-12:
        raise InvalidFieldError(
            f"{len(arms)} arms x min_weight {policy.min_weight} exceeds 1", field="policy.min_weight"
        )
    if isinstance(policy, ThompsonPolicy) and policy.method == "integration" and config.reward != "bernoulli":
        raise InvalidFieldError("method 'integration' is available for bernoulli rewards only", field="policy.method")
    check_analysis(config)


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


def initial_weights(arms: Sequence[Arm]) -> tuple[float, ...]:
    """The weights an experiment starts with: the arms' weights if given, else an equal split."""
    if all(arm.weight is not None for arm in arms):
        return tuple(float(arm.weight) for arm in arms if arm.weight is not None)
    return tuple(1.0 / len(arms) for _ in arms)


def is_adaptive(policy: PolicySpec) -> bool:
    """Whether the policy learns from rewards (a fixed split is never reweighted on schedule)."""
    return not isinstance(policy, FixedPolicy)


def policy_config(config: ExperimentConfig, weights: Sequence[float]) -> PolicyConfig:
    """The `policies` configuration for an experiment (a fixed split keeps its current weights)."""
    policy = config.policy
    match policy:
        case FixedPolicy():
            return FixedSplit(weights=tuple(weights))
        case EpsilonGreedyPolicy():
            return EpsilonGreedy(epsilon=policy.epsilon, burn_in=policy.burn_in, min_weight=policy.min_weight)
        case ThompsonPolicy():
            return ThompsonSampling(
                reward=config.reward,
                burn_in=policy.burn_in,
                min_weight=policy.min_weight,
                method=policy.method,
                draws=policy.draws,
                prior_alpha=policy.prior_alpha,
                prior_beta=policy.prior_beta,
                prior_mean=policy.prior_mean,
                prior_kappa=policy.prior_kappa,
                prior_shape=policy.prior_shape,
                prior_scale=policy.prior_scale,
            )
        case _:
            assert_never(policy)
