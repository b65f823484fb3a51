"""Deterministic assignment: exposure and arm from keyed blake2b hashes of (salt, unit).

Exposure: a unit is in iff u(salt, unit) < exposure, so raising exposure only adds units.

Namespace: u(namespace, unit) from an unkeyed hash of the namespace's name and the unit, the same
for every experiment of the namespace (and independent of their salts), so experiments with
disjoint slices of it never share a unit.

Arm: weighted rendezvous hashing (Schindelhauer & Schomaker, 2005; "weighted HRW"): for each arm
a a uniform u_a = hash(salt, unit, a) and the score -ln(u_a) / w_a, which is Exponential with
rate w_a; the smallest score wins, so P(arm a) = w_a / sum(w) exactly, and when the weights
change a unit moves only if its old arm lost weight or another arm gained enough to undercut
it. The expected share of units that move is given by `churn_share`.
"""

from __future__ import annotations

import functools
import hashlib
import math
import struct
from collections.abc import Sequence

__all__ = ["choose_arm", "churn_share", "derive_seed", "in_exposure", "namespace_uniform", "unit_uniform"]

_SCALE = 2.0**-53
_U64 = struct.Struct(">Q").unpack  # a digest's 8 bytes as a big-endian integer (int.from_bytes, faster)
_log = math.log


@functools.lru_cache(maxsize=4096)
def _keyed(salt: str) -> hashlib.blake2b:
    """blake2b keyed with the salt, before any message: copying it skips hashing the key block again."""
    return hashlib.blake2b(digest_size=8, key=salt.encode())


def _digest(salt: str, purpose: bytes, *parts: str) -> int:
    # NUL separates the parts: unit ids, arm names and purposes cannot contain it.
    h = _keyed(salt).copy()
    h.update(b"\x00".join([purpose, *[p.encode() for p in parts]]))
    value: int = _U64(h.digest())[0]
    return value


def unit_uniform(salt: str, unit: str, purpose: str = "exposure") -> float:
    """A uniform number in [0, 1) from the top 53 bits of blake2b(salt; purpose, unit)."""
    return (_digest(salt, purpose.encode(), unit) >> 11) * _SCALE


def namespace_uniform(namespace: str, unit: str) -> float:
    """A uniform number in [0, 1) from blake2b(namespace, unit), shared by the namespace's experiments."""
    return (_digest("", b"namespace", namespace, unit) >> 11) * _SCALE


def in_exposure(salt: str, unit: str, exposure: float) -> bool:
    """Whether the unit falls inside the exposed share of units (monotone in `exposure`)."""
    if exposure >= 1.0:
        return True  # u < 1 always: no need to hash
    return unit_uniform(salt, unit) < exposure


def choose_arm(salt: str, unit: str, arms: Sequence[str], weights: Sequence[float]) -> int:
    """The arm with the smallest -ln(u_a) / w_a; arms with weight 0 never win."""
    # u_a hashes (arm, unit, a) like `_digest`; the state after the shared "arm\0unit\0" is made
    # once and copied per arm (the same bytes, so the same u_a, in less time: this is the hot path
    # of every new unit, on the server and in the SDK's local evaluation).
    prefix = _keyed(salt).copy()
    prefix.update(b"arm\x00" + unit.encode() + b"\x00")
    best, best_score = -1, math.inf
    for i, (arm, w) in enumerate(zip(arms, weights, strict=True)):
        if w <= 0.0:
            continue
        h = prefix.copy()
        h.update(arm.encode())
        # +0.5 keeps u strictly inside (0, 1), so the logarithm is finite.
        u = ((_U64(h.digest())[0] >> 11) + 0.5) * _SCALE
        score = -_log(u) / w
        if score < best_score:
            best, best_score = i, score
    if best < 0:
        raise ValueError("weights: at least one arm needs a positive weight")
    return best


def churn_share(old: Sequence[float], new: Sequence[float]) -> float:
    """Expected share of units whose rendezvous arm differs between two weight vectors.

    With scores E_a / w_a (E_a iid Exponential(1)), a unit keeps arm i iff E_j > E_i * m_j for
    all j != i, where m_j = max(w_j / w_i, w'_j / w'_i); integrating over E_i gives
    P(keep i) = 1 / (1 + sum_j m_j). The churn is 1 - sum_i P(keep i). For 50/50 -> 60/40
    it is 0.1, the minimum any assignment can achieve (the total-variation distance).
    """
    if len(old) != len(new):
        raise ValueError(f"new: mismatched lengths, {len(new)} weights for {len(old)} arms")
    keep = 0.0
    for i, (wi, vi) in enumerate(zip(old, new, strict=True)):
        if wi <= 0.0 or vi <= 0.0:
            continue
        rest = sum(max(wj / wi, vj / vi) for j, (wj, vj) in enumerate(zip(old, new, strict=True)) if j != i)
        keep += 1.0 / (1.0 + rest)
    return max(0.0, 1.0 - keep)


def derive_seed(salt: str, version: int) -> int:
    """A 63-bit seed for the reweight that creates weights `version` (blake2b, never `hash()`)."""
    return _digest(salt, b"reweight", str(version)) >> 1
