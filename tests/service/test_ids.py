"""Id factories: distinct, fixed-width hex ids."""

import re

from bandit_service.ids import process_ids, random_id, sequential_ids


def test_process_ids_are_distinct_within_and_across_factories():
    a, b = process_ids(), process_ids()
    ids = [a() for _ in range(1000)] + [b() for _ in range(1000)]
    assert len(set(ids)) == 2000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_random_and_sequential_ids_are_32_hex_characters():
    seq = sequential_ids("x")
    assert re.fullmatch(r"[0-9a-f]{32}", random_id())
    assert seq() != seq()
    assert sequential_ids("x")() == sequential_ids("x")()
