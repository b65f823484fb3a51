"""The storage contract for features (memory twin, SQLite, PostgreSQL): rows, tombstones, the change feed."""

from __future__ import annotations

import msgspec
import pytest

from bandit_service.core.errors import ConflictError
from bandit_service.core.model import Experiment, ExperimentChanges, Feature
from bandit_service.ports import Storage
from bandit_service.services.features import FeatureDeletion, delete_features, save_features
from tests.storage.test_contract import T0, contract, new_experiment, write

PAYLOAD = {"model": "nmt-v2", "params": [1, 2.5, None, True], "nested": {"a": {"b": "c"}}}


def feature(key: str, default: object = None, at: float = T0, description: str = "") -> Feature:
    return Feature(key=key, description=description, default_payload=default, created_at=at, updated_at=at)


async def serving(storage: Storage, key: str, serves: str | None, status: str = "draft") -> Experiment:
    new = new_experiment(key)
    new = msgspec.structs.replace(new, status=status, config=msgspec.structs.replace(new.config, feature=serves))
    experiment: Experiment = await write(storage, lambda tx: tx.insert_experiment(new))
    return experiment


@contract
async def test_features_are_saved_replaced_listed_and_deleted_with_a_tombstone(storage: Storage) -> None:
    first = feature("nmt", PAYLOAD, description="NMT model")
    assert await write(storage, lambda tx: tx.save_feature(first)) == (first, True)
    assert await storage.feature("nmt") == first
    replaced = feature("nmt", None, at=T0 + 10)
    stored, created = await write(storage, lambda tx: tx.save_feature(replaced))
    assert not created and stored == msgspec.structs.replace(replaced, created_at=T0)  # creation time kept
    assert await storage.feature("nmt") == stored and (await storage.feature("nmt")).default_payload is None
    await write(storage, lambda tx: tx.save_feature(feature("asr", [])))
    assert [f.key for f in await storage.features()] == ["asr", "nmt"]

    assert await write(storage, lambda tx: tx.delete_feature("nmt", T0 + 20)) == stored
    assert await storage.feature("nmt") is None and [f.key for f in await storage.features()] == ["asr"]
    assert await write(storage, lambda tx: tx.feature("nmt")) is None
    assert await write(storage, lambda tx: tx.delete_feature("nmt", T0 + 21)) is None
    assert await write(storage, lambda tx: tx.delete_feature("a\x00b", T0 + 21)) is None
    assert await storage.feature("a\x00b") is None
    back = feature("nmt", "again", at=T0 + 30)
    assert await write(storage, lambda tx: tx.save_feature(back)) == (back, True)  # a tombstone is no feature
    assert await storage.feature("nmt") == back


@contract
async def test_the_change_feed_reports_features_and_what_each_changed_experiment_serves(storage: Storage) -> None:
    start = await storage.changes(None)
    await write(storage, lambda tx: tx.save_feature(feature("nmt")))
    saved = await storage.changes(start.seq)
    assert saved.revisions == {} and list(saved.features) == ["nmt"] and saved.seq == saved.features["nmt"]
    assert saved.seq > start.seq

    one = await serving(storage, "one", "nmt")
    await serving(storage, "plain", None)
    created = await storage.changes(saved.seq)
    assert created.revisions == {"one": 1, "plain": 1} and created.features == {}
    assert created.experiment_features == {"one": "nmt"}  # `plain` serves none

    moved = msgspec.structs.replace(one, config=msgspec.structs.replace(one.config, feature="asr"))
    assert await write(storage, lambda tx: tx.update_experiment(moved)) is not None
    await write(storage, lambda tx: tx.delete_feature("nmt", T0 + 1))
    later = await storage.changes(created.seq)
    assert later.revisions == {"one": 2} and later.experiment_features == {"one": "asr"}
    assert list(later.features) == ["nmt"] and later.seq == later.features["nmt"]  # the deletion, numbered
    assert (await storage.changes(None)).seq == later.seq
    assert await storage.changes(later.seq) == ExperimentChanges(seq=later.seq, revisions={})


@contract
async def test_feature_experiments_are_those_naming_it_in_any_status(storage: Storage) -> None:
    await write(storage, lambda tx: tx.save_feature(feature("nmt")))
    a = await serving(storage, "a", "nmt", status="active")
    await serving(storage, "other", "asr", status="active")
    c = await serving(storage, "c", "nmt", status="completed")
    await serving(storage, "plain", None)
    assert [e.key for e in await storage.feature_experiments("nmt")] == ["a", "c"]  # by id
    assert [e.key for e in await write(storage, lambda tx: tx.feature_experiments("nmt"))] == ["a", "c"]
    assert await storage.feature_experiments("none") == [] and await storage.feature_experiments("a\x00") == []
    assert (await storage.feature_experiments("nmt"))[0] == a and c.status == "completed"


@contract
async def test_a_feature_an_active_experiment_serves_is_not_deleted(storage: Storage) -> None:
    await storage.write(save_features, feature("nmt"))
    await serving(storage, "live", "nmt", status="active")
    before = await storage.changes(None)
    with pytest.raises(ConflictError, match="'live' \\(active\\)"):
        await storage.write(delete_features, FeatureDeletion(key="nmt", now=T0 + 1))
    assert await storage.feature("nmt") == feature("nmt")  # the tombstone was undone with the refusal
    assert (await storage.changes(before.seq)).features == {}
