"""`bandit-service new`: a commented YAML spec that `bandit-service create` accepts as it is."""

from __future__ import annotations

import json

__all__ = ["template"]

_TEMPLATE = """\
# An experiment spec: edit it, then `bandit-service create {file}` (then `bandit-service start {key}`).
# YAML here; `create` reads TOML (.toml) and JSON (.json) with the same fields too.
# Only key, name and arms are required: every commented line shows a field at its default.
# Quote words YAML reads as booleans or numbers (yes, no, on, off, 1.0) where you mean text.

# The key is what apps send as `experiment` (lowercase letters, digits, - and _); the name is for people.
key: {key}
name: {name}
description: Which button colour gets more checkouts

arms:                       # 2 to 50; the first is the control unless `control` names another
  - name: blue
    payload: {{color: "#1f6feb"}}    # any JSON your app needs; every decision returns it
  - name: green
    payload: {{color: "#2da44e"}}
# control: blue

policy:                     # how traffic moves between arms as rewards come in
  kind: thompson            # thompson | epsilon_greedy (epsilon: 0.1) | ucb1 | fixed (weights below)
  min_weight: 0.05          # every arm keeps at least 5% of traffic
  # burn_in: 0              # equal split until every arm has this many rewards
# For a fixed split, use `policy: {{kind: fixed}}` and give each arm a `weight` (they sum to 1).

reward: bernoulli           # bernoulli: rewards are 0 or 1; continuous: any number (revenue, latency)
reweight_every_s: 3600      # how often the scheduler recomputes the weights
exposure: 1.0               # share of units (by hash) that enter; the others get the control

# sticky: true              # a unit keeps its first arm (false: every decision is drawn anew)
# reward_window_s: 86400    # a trial without a reward after this long counts as default_reward
# default_reward: 0.0
# trial: unit               # unit: a unit's decisions inside reward_window_s are one trial; decision: each decision
# aggregate: max            # how a trial's rewards combine: max (bernoulli default), sum, mean or last
# targeting: {{country: {{$in: [DE, AT]}}, tier: {{$ne: free}}}}   # only units whose attributes match
# namespace: {{name: checkout, start: 0.0, end: 0.5}}             # mutually exclusive experiments
# feature: checkout-button   # the feature this experiment serves (PUT /v1/features/... first)
# priority: 0                # among a feature's experiments, lower is evaluated first

# What the report decides with, and the sample size it plans for:
# min_sample_size: 2000
# minimum_detectable_effect: 0.02      # absolute (0.02 = +2 points), or relative with mde_relative: true
# level: 0.95                          # the report's confidence level, 0.8 to 0.999
# correction: holm                     # across arms' comparisons with the control: holm, bonferroni or none
# sequential_tuning_n: 5000            # observations per arm where the always-valid figures are tightest
# criteria:
#   primary: {{metric: reward, min_improvement: 0.0}}
#   guardrails:
#     - {{metric: latency_ms, max_relative_increase: 0.1}}

# When it ends on its own, and what the scheduler may do by itself:
# max_duration_s: 1209600              # two weeks from its first start
# automation:
#   on_guardrail_breach: pause         # or control
#   on_ship: complete
"""


def template(key: str = "checkout-button", name: str = "Checkout button colour") -> str:
    """The commented YAML spec, for an experiment `key` named `name`."""
    # A JSON string is a YAML double-quoted string: any name stays text (yes, 1.0, a: b).
    return _TEMPLATE.format(key=key, name=json.dumps(name, ensure_ascii=False), file="experiment.yaml")
