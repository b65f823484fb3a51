"""What a targeting rule costs the decision path: nanoseconds per `matches` call.

    python -m benchmarks.targeting
    python -m benchmarks.targeting --number 200000 --repeat 7

Three rules against attributes that satisfy them (every test runs: the dearest case):
- `flat`: today's form, `{"language": ["de", "fr"], "tier": "pro"}`;
- `nested`: operators, `$or` and `$not` (six tests over four attributes);
- `before`: the flat rule under the loop that `matches` was before the grammar, for reference.

Each figure is the best of `--repeat` runs of `--number` calls (the least disturbed by the
machine's other work), through `matches` as the decision path calls it: the compiled predicate is
looked up by the rule's identity, so compilation is not in the figures.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Mapping, Sequence
from typing import Any

from bandit_service.core.targeting import matches

__all__ = ["FLAT", "NESTED", "main", "measure"]

FLAT: dict[str, Any] = {"language": ["de", "fr"], "tier": "pro"}
FLAT_ATTRIBUTES = {"language": "fr", "tier": "pro", "country": "AT"}
NESTED: dict[str, Any] = {
    "language": {"$in": ["hi", "bn"]},
    "tier": {"$gte": 2, "$lt": 10},
    "$or": [{"tenant": "acme"}, {"$not": {"beta": True}}],
    "region": {"$exists": True},
}
NESTED_ATTRIBUTES = {"language": "bn", "tier": 3, "beta": False, "region": "eu", "country": "IN"}


def _same(a: Any, b: Any) -> bool:
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def before(targeting: Mapping[str, Any], attributes: Mapping[str, Any]) -> bool:
    """`matches` before the grammar: every attribute present and equal to the value or one of the list."""
    for name, allowed in targeting.items():
        if name not in attributes:
            return False
        value = attributes[name]
        options = allowed if isinstance(allowed, list) else (allowed,)
        if not any(_same(value, option) for option in options):
            return False
    return True


def measure(number: int, repeat: int) -> dict[str, float]:
    """Nanoseconds per call of each case, the best of `repeat` runs of `number` calls."""
    cases = {
        "flat": lambda: matches(FLAT, FLAT_ATTRIBUTES),
        "nested": lambda: matches(NESTED, NESTED_ATTRIBUTES),
        "before": lambda: before(FLAT, FLAT_ATTRIBUTES),
    }
    for name, case in cases.items():
        if not case():
            raise RuntimeError(f"the {name} rule must match its attributes, or the figure measures a shortcut")
    return {name: min(timeit.repeat(case, number=number, repeat=repeat)) / number * 1e9 for name, case in cases.items()}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Print ns per match for each rule and the ratios; returns the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200_000, help="calls per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs; the best counts")
    args = parser.parse_args(argv)
    figures = measure(args.number, args.repeat)
    for name, ns in figures.items():
        print(f"{name:>7}: {ns:8.1f} ns per match")
    print(f"nested / flat:  {figures['nested'] / figures['flat']:.2f}")
    print(f"flat / before:  {figures['flat'] / figures['before']:.2f}")
    return figures


if __name__ == "__main__":
    main()
