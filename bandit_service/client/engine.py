"""The sans-I/O heart of both clients: deciding (locally, remotely, or by fallback), rewards, definitions.

`BanditClient` and `AsyncBanditClient` hold an `Engine` and do only the I/O it asks for: the
remote decision is a generator that yields one `HttpCall` and is sent its `Outcome`; the
definitions are fetched by `client.local`'s fetchers and handed to `polled`; rewards and decision
logs go to `delivery` (see delivery.py). So the two clients cannot drift apart.

Fallback, when the service cannot decide: the `fallback` given to `decide`, else the client's
`fallbacks[key]`, else what the last known definitions say (an experiment's control, or its
winner once completed; a feature's default payload), else no arm and no payload. A fallback
naming an arm but no payload gets that arm's payload when the client has seen it (in the
definitions or in an earlier answer of the service).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Generator, Mapping
from typing import Any, Literal

import httpx
import msgspec

from bandit_service.client.decisions import ClientDecision, Fallback
from bandit_service.client.delivery import Delivery
from bandit_service.client.local import DefinitionsError, LocalEvaluator
from bandit_service.client.manage_core import BanditError
from bandit_service.client.retry import Backoff
from bandit_service.client.stats import ClientStats, Counters
from bandit_service.client.wire import (
    DECISIONS_PATH,
    HttpCall,
    Outcome,
    Refusal,
    RewardTarget,
    decision_body,
    fallback_decision,
    read_decision,
    reward_item,
)
from bandit_service.core.definitions import Definitions, ExperimentDefinition, FeatureDefinition
from bandit_service.core.fields import Attributes

__all__ = ["Ask", "Engine", "FallbackSpec", "OnUnknown"]

log = logging.getLogger("bandit_service.client")

FallbackSpec = Fallback | str
"""A fallback: a `Fallback`, or just the arm's name."""
OnUnknown = Literal["fallback", "raise"]
DEFAULT_POLL_INTERVAL_S = 30.0
"""Until the service has said how often to poll (`Definitions.poll_interval_s`)."""
MAX_ATTRIBUTE_VERDICTS = 10_000
"""Distinct attribute sets whose check is remembered (see `Engine._attributes_problem`)."""
_UNSEEN = object()
MAX_REPORTED = 1_000
"""Distinct (key, status) refusals logged as errors; later ones are counted and kept in `last_error` only."""


class _AttributesCheck(msgspec.Struct, frozen=True):
    """The service's rules for attributes; a Struct because converting to it is ~5x faster than to the bare type."""

    attributes: Attributes


class Ask(msgspec.Struct, frozen=True):
    """One `decide` call's arguments, as the app gave them."""

    experiment: str | None
    feature: str | None
    unit: str | None
    attributes: Mapping[str, Any] | None
    fallback: FallbackSpec | None

    @property
    def key(self) -> str:
        """The experiment's or the feature's key."""
        return self.experiment if self.experiment is not None else self.feature or ""


class Engine:
    """Decisions, fallbacks, rewards and definitions of one client; safe to call from many threads."""

    def __init__(
        self,
        *,
        timeout_s: float,
        fallbacks: Mapping[str, FallbackSpec] | None,
        on_unknown: OnUnknown,
        evaluator: LocalEvaluator | None,
        delivery: Delivery,
        backoff: Backoff,
        counters: Counters,
        clock: Callable[[], float],
        rng: random.Random,
    ) -> None:
        if not timeout_s > 0.0:
            raise ValueError(f"timeout_s: must be > 0, got {timeout_s}")
        if on_unknown not in ("fallback", "raise"):
            raise ValueError(f"on_unknown: 'fallback' or 'raise', got {on_unknown!r}")
        self.timeout_s = timeout_s
        self._fallbacks = {key: _as_fallback(spec) for key, spec in (fallbacks or {}).items()}
        self._on_unknown = on_unknown
        self.evaluator = evaluator
        self.delivery = delivery
        self._backoff = backoff
        self._counters = counters
        self._clock = clock
        self._rng = rng
        self._definitions: Definitions | None = None
        self._experiments: dict[str, ExperimentDefinition] = {}
        self._features: dict[str, FeatureDefinition] = {}
        self._payloads: dict[tuple[str, str], Any] = {}  # (experiment or feature, arm) -> payload seen
        self._reported: set[tuple[str, int]] = set()
        self._attribute_verdicts: dict[tuple[tuple[str, Any], ...], str | None] = {}
        self._failing = False
        self._poll_at = 0.0
        self._poll_failures = 0
        self.closed = False

    # --- deciding -------------------------------------------------------------------------

    def decide_local(self, ask: Ask) -> ClientDecision | None:
        """The local decision (its log queued), the fallback for bad attributes, or None: ask the service.

        Checks the call first (ValueError, TypeError): a mistake in it must show at once, not in an
        outage. Attributes the service would refuse (422) get the fallback, as from the service.
        """
        if (ask.experiment is None) == (ask.feature is None):
            raise ValueError("decide: give experiment=... or feature=..., exactly one")
        if ask.fallback is not None and not isinstance(ask.fallback, Fallback | str):
            raise TypeError(f"fallback: a Fallback or an arm name, got {type(ask.fallback).__name__}")
        if ask.attributes:
            problem = self._attributes_problem(ask.attributes)
            if problem is not None:
                refusal = Refusal(kind="refused", status=422, detail=f"attributes: {problem}", field="attributes")
                self._report(ask.key, refusal)
                return self._fallback(ask, f"422: {refusal.detail}")
        if self.evaluator is None:
            return None
        result = self.evaluator.decide(
            experiment=ask.experiment, feature=ask.feature, unit=ask.unit, attributes=ask.attributes
        )
        if result is None:
            return None
        if result.log is not None and self.closed:  # nothing sends any more: counted with the queue's drops
            self.delivery.logs.dropped += 1
        elif result.log is not None:
            self.delivery.put_log(result.log)
        self._counters.add_decision("local_decisions")
        return result.decision

    def _attributes_problem(self, attributes: Mapping[str, Any]) -> str | None:
        """What the service would refuse in these attributes (its own rules, core.fields), or None.

        Verdicts are remembered by the attributes' items (most apps send few distinct ones): the
        check costs more than a local decision, a lookup much less. The memo is bounded by clearing it.
        """
        try:
            items = tuple(attributes.items())
            verdict = self._attribute_verdicts.get(items, _UNSEEN)
        except TypeError:  # an unhashable value: never valid, the check says why
            items, verdict = None, _UNSEEN
        if verdict is not _UNSEEN:
            return verdict  # type: ignore[return-value]
        try:
            msgspec.convert({"attributes": dict(attributes)}, _AttributesCheck)
            problem = None
        except msgspec.ValidationError as exc:
            problem = str(exc)
        if items is not None:
            if len(self._attribute_verdicts) >= MAX_ATTRIBUTE_VERDICTS:
                self._attribute_verdicts.clear()
            self._attribute_verdicts[items] = problem
        return problem

    def decide_remote(self, ask: Ask) -> Generator[HttpCall, Outcome, ClientDecision]:
        """Ask the service (one call, `timeout_s`); any fault gives the fallback."""
        if self.closed:  # close() said so once; a decision during shutdown still gets its fallback
            return self._fallback(ask, "the client is closed")
        body = decision_body(ask.experiment, ask.feature, ask.unit, ask.attributes)
        outcome = yield HttpCall(DECISIONS_PATH, body, self.timeout_s)
        if isinstance(outcome, httpx.HTTPError):
            return self._fault(ask, f"{type(outcome).__name__}: {outcome}" if str(outcome) else type(outcome).__name__)
        answer = read_decision(outcome, ask.unit)
        match answer:
            case ClientDecision():
                self._remember(answer, ask.feature)
                if self._failing:
                    self._failing = False
                    log.info("bandit client: the service decides again")
                self._counters.add_decision("remote_decisions")
                return answer
            case Refusal(kind="unknown") if self._on_unknown == "raise":
                raise BanditError(answer.detail, answer.status, answer.field, problem=answer.problem)
            case Refusal(kind="fault"):
                return self._fault(ask, f"answered {answer.status}: {answer.detail}")
            case Refusal():
                self._report(ask.key, answer)
                return self._fallback(ask, f"{answer.status}: {answer.detail}")

    def _fault(self, ask: Ask, reason: str) -> ClientDecision:
        warn = not self._failing  # one warning when the trouble starts, not one per decision
        self._failing = True
        return self._fallback(ask, f"the service could not decide ({reason})", warn)

    def _report(self, key: str, refusal: Refusal) -> None:
        """Log a refusal once per key and status: an unknown key as a warning, the app's bad request as an error."""
        if len(self._reported) >= MAX_REPORTED or (key, refusal.status) in self._reported:
            return
        self._reported.add((key, refusal.status))
        field = f" (field: {refusal.field})" if refusal.field else ""
        level = logging.WARNING if refusal.kind == "unknown" else logging.ERROR
        log.log(
            level,
            "bandit client: the service refused to decide for %r: %s: %s%s; using the fallback",
            key,
            refusal.status,
            refusal.detail,
            field,
        )

    def _fallback(self, ask: Ask, reason: str, warn: bool = False) -> ClientDecision:
        self._counters.add_decision("fallback_decisions")
        self._counters.error(reason)
        if warn:
            log.warning("bandit client: %s; using the fallback", reason)
        fallback = self.fallback_for(ask.key, ask.feature is not None, ask.fallback)
        return fallback_decision(fallback, ask.experiment, ask.feature, ask.unit)

    def fallback_for(self, key: str, is_feature: bool, given: FallbackSpec | None = None) -> Fallback:
        """The fallback of an experiment or a feature (see the module's docstring for the order)."""
        chosen = _as_fallback(given) if given is not None else self._fallbacks.get(key)
        if chosen is None:
            chosen = self._known_default(key, is_feature)
        if chosen.arm is not None and chosen.payload is None:
            payload = self._payloads.get((key, chosen.arm))
            if payload is not None:
                chosen = Fallback(arm=chosen.arm, payload=payload)
        return chosen

    def _known_default(self, key: str, is_feature: bool) -> Fallback:
        if is_feature:
            feature = self._features.get(key)
            return Fallback() if feature is None else Fallback(payload=feature.default_payload)
        experiment = self._experiments.get(key)
        if experiment is None:
            return Fallback()
        arm = experiment.winner if experiment.status == "completed" and experiment.winner else experiment.control
        return Fallback(arm=arm)

    def _remember(self, decision: ClientDecision, feature: str | None) -> None:
        """Keep the payload of an arm the service served, for a fallback that names the arm only."""
        if decision.arm is None or decision.experiment is None or len(self._payloads) >= MAX_REPORTED * 10:
            return
        self._payloads[(decision.experiment, decision.arm)] = decision.payload
        if feature is not None:
            self._payloads[(feature, decision.arm)] = decision.payload

    # --- rewarding ------------------------------------------------------------------------

    def reward(
        self,
        target: RewardTarget,
        value: float,
        metrics: Mapping[str, float] | None,
        idempotency_key: str | None,
    ) -> None:
        """Queue a reward (a counted no-op for a fallback decision or one outside the experiment)."""
        item = reward_item(target, value, metrics, idempotency_key)
        if item is None:
            self._counters.add("skipped_rewards")
            return
        if self.closed:
            self.delivery.rewards.dropped += 1
            log.warning("bandit client: reward after close() dropped")
            return
        self.delivery.put_reward(item)

    def close(self, *, flushed: bool) -> None:
        """Take no more rewards; say what could not be delivered."""
        self.closed = True
        if not flushed:
            stats = self.stats()
            log.warning(
                "bandit client: closing with %d rewards and %d decision logs not delivered",
                stats.pending,
                stats.pending_logs,
            )

    # --- definitions (local evaluation) ---------------------------------------------------

    @property
    def etag(self) -> str | None:
        """The version of the definitions held (sent as If-None-Match)."""
        return None if self.evaluator is None else self.evaluator.version

    def poll_due(self) -> bool:
        """Whether the definitions should be fetched now."""
        return self.evaluator is not None and not self.closed and self._clock() >= self._poll_at

    def poll_sleep_s(self) -> float | None:
        """Seconds until the next poll (None: no polling)."""
        if self.evaluator is None:
            return None
        return max(0.0, self._poll_at - self._clock())

    def polled(self, definitions: Definitions | None) -> None:
        """Load fetched definitions (None: unchanged since the last fetch) and plan the next poll."""
        assert self.evaluator is not None  # only a local client polls
        if definitions is not None:
            try:
                self.evaluator.load(definitions)
            except DefinitionsError as exc:
                self.poll_failed(exc)
                return
            self._definitions = definitions
            # Merged, not replaced: a key that left the definitions keeps its last known fallback.
            self._experiments.update((e.key, e) for e in definitions.experiments)
            self._features.update((f.key, f) for f in definitions.features)
            for e in definitions.experiments:
                for arm in e.arms:
                    self._payloads[(e.key, arm.name)] = arm.payload
        if self._poll_failures:
            log.info("bandit client: definitions fetched again (version %s)", self.etag)
        self._poll_failures = 0
        self._poll_at = self._clock() + self._poll_interval_s()

    def poll_failed(self, exc: httpx.HTTPError | DefinitionsError) -> None:
        """Keep the definitions held; try again after the poll interval (before the first load: sooner)."""
        if not self._poll_failures:
            log.warning("bandit client: fetching definitions failed: %s", exc)
        self._poll_failures += 1
        self._counters.error(f"fetching definitions failed: {exc}")
        if self._definitions is None:  # nothing to decide locally with yet: try again sooner
            wait = self._backoff.delay(self._poll_failures - 1, self._rng)
        else:
            wait = self._poll_interval_s()
        self._poll_at = self._clock() + wait

    def _poll_interval_s(self) -> float:
        return DEFAULT_POLL_INTERVAL_S if self._definitions is None else max(0.05, self._definitions.poll_interval_s)

    # --- the sender's schedule ------------------------------------------------------------

    def sleep_s(self) -> float | None:
        """How long the background sender may sleep (None: until woken)."""
        waits = [w for w in (self.delivery.sleep_s(), self.poll_sleep_s()) if w is not None]
        return min(waits) if waits else None

    def stats(self) -> ClientStats:
        """A snapshot of the counters, with the queues' state."""
        delivery = self.delivery
        return self._counters.snapshot(
            dropped=delivery.rewards.dropped,
            pending=len(delivery.rewards),
            dropped_logs=delivery.logs.dropped,
            pending_logs=len(delivery.logs),
            definitions_version=self.etag,
        )


def _as_fallback(spec: FallbackSpec) -> Fallback:
    if isinstance(spec, Fallback):
        return spec
    if isinstance(spec, str):
        return Fallback(arm=spec)
    raise TypeError(f"fallback: a Fallback or an arm name, got {type(spec).__name__}")
