"""Local evaluation: decide in-process from the service's definitions, with the server's own placement code.

The SDK fetches the definitions of every experiment and feature (GET /v1/definitions, polled with
its ETag, so an unchanged poll costs a 304) and `LocalEvaluator.decide` answers a decision without
the network, exactly as the service would (services/decisions.py `place` and `_outside`,
services/features.py `decide_by_feature`):

- by experiment: the same `admits` and `choose_arm` as the server's `place_unit` (status,
  targeting, namespace slice, exposure, then the weighted rendezvous arm); a unit-less request is
  an independent draw keyed by its fresh decision id; a unit outside the experiment gets the
  control, or the winner once the experiment completed with one, and is not logged;
- sticky: a unit with an arm in the sticky store keeps it while the arm exists (the service keeps
  a unit's first arm the same way), a new unit's arm is stored;
- by feature: the first of its experiments in evaluation order that serves the unit decides (an
  active one that admits it, or a completed one serving its winner where its targeting matches),
  else the feature's default payload, with no experiment and no arm.

A decision in the experiment comes with the `LoggedDecisionIn` the SDK sends to POST
/v1/decisions/log, carrying the decision's id, propensity and weights version. The hot path is a
dict lookup, the sticky store (or one hash per arm for a new unit) and three Structs: everything
else (arm indexes, payloads, weights tuples, the outside arm, the targeting check) is prepared once
per `load`, which swaps the whole snapshot in one assignment. Agreement with the service, id for
id, is tested in tests/client/test_local_evaluation.py; the figures are benchmarks/local_decisions.py's.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Any, Literal

import httpx
import msgspec

from bandit_service.client.decisions import ClientDecision
from bandit_service.client.sticky import MemoryStickyStore, StickyStore
from bandit_service.core.assignment import choose_arm
from bandit_service.core.definitions import OUTSIDE_PREFIX, Definitions, ExperimentDefinition, LoggedDecisionIn
from bandit_service.core.errors import InvalidFieldError
from bandit_service.core.placement import admits, role_in_feature
from bandit_service.core.targeting import check_targeting, matches

__all__ = [
    "DEFINITIONS_PATH",
    "DefinitionsError",
    "LocalEvaluator",
    "LocalResult",
    "afetch_definitions",
    "fetch_definitions",
    "local_ids",
]

log = logging.getLogger(__name__)

DEFINITIONS_PATH = "/v1/definitions"
_NO_ATTRIBUTES: Mapping[str, Any] = {}  # read only: passed to targeting when the app gives no attributes
_DECODER = msgspec.json.Decoder(Definitions)


class DefinitionsError(Exception):
    """GET /v1/definitions answered something other than definitions or 304 (or an experiment cannot be evaluated)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class LocalResult(msgspec.Struct, frozen=True):
    """A local decision, and what to log to the service (None: not in the experiment, nothing to log)."""

    decision: ClientDecision
    log: LoggedDecisionIn | None


def local_ids() -> Callable[[], str]:
    """Decision ids unique across processes: 64 random bits drawn once, then a 64-bit counter (32 hex characters).

    The same scheme as the server's `bandit_service.ids.process_ids` (not imported: it pulls in the
    server's model and numpy): one Python increment per id, no system call.
    """
    prefix = secrets.token_hex(8)
    counter = itertools.count()

    def next_id() -> str:
        return f"{prefix}{next(counter):016x}"

    return next_id


class _Experiment:
    """An experiment prepared for the hot path: tuples and lookups built once per load."""

    __slots__ = (
        "arm_index",
        "arms",
        "exposure",
        "feature",
        "feature_role",
        "key",
        "namespace",
        "outside",
        "payloads",
        "salt",
        "status",
        "sticky",
        "targeting",
        "trial",
        "weights",
        "weights_version",
    )

    def __init__(self, definition: ExperimentDefinition) -> None:
        key = definition.key
        self.key = key
        self.arms = tuple(arm.name for arm in definition.arms)
        self.payloads = tuple(arm.payload for arm in definition.arms)
        self.arm_index = {name: i for i, name in enumerate(self.arms)}
        if len(self.arm_index) != len(self.arms):
            raise DefinitionsError(f"experiment {key!r}: arm names repeat")
        self.weights = tuple(float(w) for w in definition.weights)
        if len(self.weights) != len(self.arms):
            raise DefinitionsError(f"experiment {key!r}: {len(self.weights)} weights for {len(self.arms)} arms")
        if definition.status == "active" and not any(w > 0.0 for w in self.weights):
            raise DefinitionsError(f"experiment {key!r}: active, and no arm has a positive weight")
        self.salt = definition.salt
        self.exposure = definition.exposure
        self.namespace = definition.namespace
        self.status = definition.status
        # The same object on every call: `matches` keeps its compiled predicate by identity.
        self.targeting = definition.targeting
        try:
            check_targeting(self.targeting)
        except InvalidFieldError as exc:
            raise DefinitionsError(f"experiment {key!r}: {exc.field}: {exc}") from exc
        self.feature = definition.feature
        self.sticky = definition.sticky
        self.trial: Literal["unit", "decision"] = definition.trial
        self.weights_version = definition.weights_version
        self.feature_role = role_in_feature(definition.status, definition.winner)
        # services/decisions.py `_outside`: the control, or the winner once completed with one.
        outside = definition.control
        if definition.status == "completed" and definition.winner is not None:
            outside = definition.winner
        if outside not in self.arm_index:
            raise DefinitionsError(f"experiment {key!r}: {outside!r} (control or winner) is not one of its arms")
        self.outside = self.arm_index[outside]

    def serves_winner(self, attributes: Mapping[str, Any]) -> bool:
        """`core.features.serves_winner`: completed with a winner, and its targeting matches."""
        return self.feature_role == "winner" and (not self.targeting or matches(self.targeting, attributes))


class _Feature:
    """A feature prepared for the hot path: its default and its experiments in evaluation order."""

    __slots__ = ("default_payload", "experiments", "key")

    def __init__(self, key: str, default_payload: Any, experiments: tuple[_Experiment, ...]) -> None:
        self.key = key
        self.default_payload = default_payload
        self.experiments = experiments


class _Snapshot:
    """One load's experiments and features by key; replaced whole, never changed.

    An experiment this SDK cannot evaluate (inconsistent, or a targeting rule it does not know, as
    from a newer service) is left out with the reason in `skipped`, and so is every feature it
    serves: asked for, they answer None and the client asks the service, which can. The rest of
    the document still loads, so one such experiment never freezes the others at an old version.
    """

    __slots__ = ("experiments", "features", "skipped", "version")

    def __init__(self, definitions: Definitions) -> None:
        self.version = definitions.version
        self.skipped: dict[str, str] = {}
        self.experiments: dict[str, _Experiment] = {}
        for d in definitions.experiments:
            try:
                self.experiments[d.key] = _Experiment(d)
            except DefinitionsError as exc:
                self.skipped[d.key] = str(exc)
        self.features: dict[str, _Feature] = {}
        for f in definitions.features:
            left_out = [name for name in f.experiments if name in self.skipped]
            if left_out:
                self.skipped[f.key] = f"feature {f.key!r}: its experiment {left_out[0]!r} is left to the service"
                continue
            # Drafts are not in the definitions, and the server skips them; it also skips an
            # experiment that serves another feature by now (services/features.py `lookup`).
            served = (self.experiments[name] for name in f.experiments if name in self.experiments)
            self.features[f.key] = _Feature(f.key, f.default_payload, tuple(e for e in served if e.feature == f.key))


class LocalEvaluator:
    """Decides locally from the last loaded `Definitions`; thread-safe (`load` swaps a whole snapshot).

    `sticky` keeps units' arms (default: a `MemoryStickyStore` of 100,000 assignments); `ids` makes
    decision ids (default: `local_ids()`, a random prefix and a counter).
    """

    def __init__(self, sticky: StickyStore | None = None, ids: Callable[[], str] | None = None) -> None:
        self._sticky = sticky if sticky is not None else MemoryStickyStore()
        self._ids = ids if ids is not None else local_ids()
        self._snapshot: _Snapshot | None = None

    @property
    def version(self) -> str | None:
        """The loaded definitions' version (their ETag); None before the first load."""
        snapshot = self._snapshot
        return None if snapshot is None else snapshot.version

    @property
    def sticky(self) -> StickyStore:
        """The sticky store the evaluator reads and writes."""
        return self._sticky

    @property
    def skipped(self) -> Mapping[str, str]:
        """Experiments and features of the loaded definitions left to the service, with the reason."""
        snapshot = self._snapshot
        return {} if snapshot is None else snapshot.skipped

    def load(self, definitions: Definitions) -> None:
        """Prepare the definitions and swap them in at once; what cannot be evaluated here is left out (`skipped`)."""
        snapshot = _Snapshot(definitions)
        for reason in snapshot.skipped.values():
            log.warning("bandit client: %s; deciding it through the service", reason)
        self._snapshot = snapshot  # one reference assignment: a concurrent decide sees the old or the new, whole

    def decide(
        self,
        *,
        experiment: str | None = None,
        feature: str | None = None,
        unit: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> LocalResult | None:
        """The decision the service would make, and its log; None when the service must be asked.

        None before the first load, for a key the definitions do not have, and for one left to the
        service (`skipped`). Give the experiment or the feature (ValueError for both or neither).
        """
        snapshot = self._snapshot
        if snapshot is None:
            return None
        if experiment is not None:
            if feature is not None:
                raise ValueError("give the experiment or the feature to decide for, not both")
            found = snapshot.experiments.get(experiment)
            if found is None:
                return None
            return self._decide(found, unit, attributes, None)
        if feature is None:
            raise ValueError("give the experiment or the feature to decide for")
        route = snapshot.features.get(feature)
        if route is None:
            return None
        return self._by_feature(route, unit, attributes)

    def _decide(
        self, e: _Experiment, unit: str | None, attributes: Mapping[str, Any] | None, feature: str | None
    ) -> LocalResult:
        """services/decisions.py `DecisionService.decide` for one experiment, with the local sticky store."""
        decision_id = self._ids()
        arm = self._place(e, unit, _NO_ATTRIBUTES if attributes is None else attributes, decision_id)
        return self._result(e, unit, attributes, feature, decision_id, arm)

    def _place(self, e: _Experiment, unit: str | None, attributes: Mapping[str, Any], decision_id: str) -> int | None:
        """services/decisions.py `place` and the write's sticky rule: the stored arm wins, a new unit's is stored.

        `core.placement.place_unit` in two steps, so a returning unit is not hashed per arm for a
        candidate its stored arm overrides.
        """
        key = decision_id if unit is None else unit  # a unit-less request: an independent draw
        if not admits(
            status=e.status,
            salt=e.salt,
            targeting=e.targeting,
            namespace=e.namespace,
            exposure=e.exposure,
            key=key,
            attributes=attributes,
        ):
            return None
        if not e.sticky or unit is None:
            return choose_arm(e.salt, key, e.arms, e.weights)
        stored = self._sticky.get(e.key, unit)
        if stored is not None:
            arm = e.arm_index.get(stored)
            if arm is not None:
                return arm
        arm = choose_arm(e.salt, unit, e.arms, e.weights)  # new (or its stored arm is gone): place it, keep it
        self._sticky.set(e.key, unit, e.arms[arm])
        return arm

    @staticmethod
    def _result(
        e: _Experiment,
        unit: str | None,
        attributes: Mapping[str, Any] | None,
        feature: str | None,
        decision_id: str,
        arm: int | None,
    ) -> LocalResult:
        """The decision (and its log) for arm `arm`, or services/decisions.py `_outside` when None."""
        if arm is None:
            outside = e.outside
            return LocalResult(
                ClientDecision(
                    experiment=e.key,
                    feature=feature,
                    unit=unit,
                    arm=e.arms[outside],
                    payload=e.payloads[outside],
                    decision_id=OUTSIDE_PREFIX + decision_id,
                    propensity=1.0,
                    weights_version=e.weights_version,
                    in_experiment=False,
                    source="local",
                    trial=e.trial,
                ),
                None,
            )
        name = e.arms[arm]
        # The service logs a returning unit at the propensity its stored arm had when the unit was
        # placed; this process knows only today's weights, and a held arm (weight 0) has none: log 1,
        # the probability that a unit with a stored arm is served it (the log needs a positive one).
        propensity = e.weights[arm] or 1.0
        return LocalResult(
            ClientDecision(
                experiment=e.key,
                feature=feature,
                unit=unit,
                arm=name,
                payload=e.payloads[arm],
                decision_id=decision_id,
                propensity=propensity,
                weights_version=e.weights_version,
                in_experiment=True,
                source="local",
                trial=e.trial,
            ),
            LoggedDecisionIn(
                decision_id=decision_id,
                experiment=e.key,
                unit=unit,
                arm=name,
                propensity=propensity,
                weights_version=e.weights_version,
                attributes={} if attributes is None else dict(attributes),
            ),
        )

    def _by_feature(self, route: _Feature, unit: str | None, attributes: Mapping[str, Any] | None) -> LocalResult:
        """services/features.py `decide_by_feature`: the first experiment that serves the unit, else the default."""
        given = _NO_ATTRIBUTES if attributes is None else attributes
        for e in route.experiments:
            role = e.feature_role
            if role == "skip" or (role == "winner" and not e.serves_winner(given)):
                continue
            decision_id = self._ids()  # the server's decision by experiment makes one, served or not
            arm = self._place(e, unit, given, decision_id)
            # Outside an active experiment the answer is its control: not this feature's to give, so
            # the next experiment decides; a completed one serves its winner (arm None: `_outside`).
            if arm is not None or role == "winner":
                return self._result(e, unit, attributes, route.key, decision_id, arm)
        return LocalResult(
            ClientDecision(
                experiment=None,
                feature=route.key,
                unit=unit,
                arm=None,
                payload=route.default_payload,
                decision_id=OUTSIDE_PREFIX + self._ids(),
                propensity=1.0,
                weights_version=0,
                in_experiment=False,
                source="local",
            ),
            None,
        )


def _quoted(etag: str) -> str:
    """An entity tag as If-None-Match wants it: a version is quoted, a full tag (quoted or weak) kept."""
    return etag if etag.startswith(('"', "W/")) else f'"{etag}"'


def _definitions(response: httpx.Response, etag: str | None) -> Definitions | None:
    if response.status_code == 304 and etag is not None:
        return None
    if not response.is_success:
        detail = response.text[:300]
        raise DefinitionsError(
            f"GET {DEFINITIONS_PATH} answered {response.status_code}: {detail}", status=response.status_code
        )
    try:
        return _DECODER.decode(response.content)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise DefinitionsError(f"GET {DEFINITIONS_PATH}: not definitions: {exc}", status=response.status_code) from exc


def _headers(etag: str | None) -> dict[str, str]:
    return {} if etag is None else {"If-None-Match": _quoted(etag)}


def fetch_definitions(http: httpx.Client, etag: str | None) -> Definitions | None:
    """GET /v1/definitions; None when they are unchanged since `etag` (304).

    `etag` is the version held (`LocalEvaluator.version`, or the ETag header as sent). Raises
    httpx.HTTPError on a network error and DefinitionsError on any other answer.
    """
    return _definitions(http.get(DEFINITIONS_PATH, headers=_headers(etag)), etag)


async def afetch_definitions(http: httpx.AsyncClient, etag: str | None) -> Definitions | None:
    """`fetch_definitions` on an async client."""
    return _definitions(await http.get(DEFINITIONS_PATH, headers=_headers(etag)), etag)
