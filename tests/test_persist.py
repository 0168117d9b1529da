"""The disk cache of finished results: exact round trips of every experiment's result, and no way for a
corrupted, truncated or planted entry to reach a page or to run code."""

import dataclasses
import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import diskcache
import numpy as np
import pytest

from normviz import persist
from normviz.config import Spec
from normviz.experiments import (
    activations,
    alternatives,
    batch_size,
    by_hand,
    inference,
    init_sweep,
    norm_cost,
    norm_zoo,
    rnn_norms,
    run_of,
    running_stats,
    spec_classes,
    sync_bn,
    why_adabn,
    why_landscape,
    why_lr_range,
    why_noisy,
    why_scale,
)
from normviz.persist import DecodeError, ResultCache, decode, encode
from normviz.runs import final
from normviz.runtime import configure_torch

# every experiment: the cheap ones at their defaults, the others with few steps
SPECS = [
    activations.ActivationsSpec(steps=30, probe_every=10),
    init_sweep.InitSweepSpec(epochs=2, scales=4),
    running_stats.RunningStatsSpec(steps=40, pop_every=10),
    by_hand.ByHandSpec(),
    inference.InferenceSpec(train_epochs=1, finetune_steps=20),
    batch_size.BatchSizeSpec(sizes=(16, 64), stream_steps=20),
    alternatives.AxesSpec(),
    norm_zoo.ZooSpec(steps=20),
    norm_cost.CostSpec(model="mlp", cost_batch_sizes=(16,)),
    sync_bn.SyncBNSpec(model="mlp", steps=10, sub_batches=(1, 2)),
    rnn_norms.RNNSpec(steps=20),
    why_lr_range.LrRangeSpec(steps=20, rates=3),
    why_landscape.LandscapeSpec(steps=20),
    why_noisy.NoisySpec(steps=20),
    why_scale.ScaleSpec(steps=20),
    why_adabn.AdaBNSpec(steps=20),
]
RUNS = {cls: run_of(cls) for cls in spec_classes().values()}


@pytest.fixture(scope="module")
def results():
    configure_torch()  # one thread: two OpenMP threads on a busy 2-core machine wait for each other
    return {type(spec): final(RUNS[type(spec)](spec)) for spec in SPECS}


def assert_same(a, b, where="result"):
    assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, np.ndarray) or isinstance(a, np.generic):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b), where
        assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), where
    elif isinstance(a, Spec):
        assert a == b and a.key() == b.key(), where
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, where


def test_every_experiment_is_covered():
    assert {type(s) for s in SPECS} == set(RUNS)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: type(s).__name__)
def test_round_trip_of_every_experiments_final_result(results, spec):
    result = results[type(spec)]
    assert result.done
    back = decode(encode(result))
    assert_same(result, back)
    assert back.spec.key() == spec.key()
    if hasattr(result, "summary"):  # what the CLI writes from it is the same too
        assert json.dumps(back.summary(), default=str) == json.dumps(result.summary(), default=str)


def test_types_survive_exactly():
    a = alternatives.AxesResult(
        alternatives.AxesSpec(),
        np.arange(6, dtype=np.float32).reshape(1, 2, 3),
        3,
        sets={"__weird": np.int64(4), 2: (1.5, float("nan"), [None, True]), (1, "a"): float("-inf")},
    )
    back = decode(encode(a))
    assert_same(a, back)
    assert type(back.sets[2]) is tuple and type(back.sets[2][2]) is list and type(back.sets["__weird"]) is np.int64


def test_object_arrays_are_not_stored():
    r = alternatives.AxesResult(alternatives.AxesSpec(), np.array([object()]), 1)
    with pytest.raises(TypeError):
        encode(r)


def planted(header: dict, arrays: dict | None = None) -> bytes:
    """Bytes in the cache's format (valid checksum) with a header and arrays of an attacker's choosing;
    np.savez pickles object arrays."""
    buffer = io.BytesIO()
    members = {"__header__": np.frombuffer(json.dumps(header).encode(), np.uint8)} | (arrays or {})
    np.savez(buffer, **members)
    payload = buffer.getvalue()
    return persist.MAGIC + hashlib.sha256(payload).digest() + payload


class Evil:
    """Unpickling this creates a folder: the tests check that it never appears."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_decode_builds_no_class_outside_the_registry(tmp_path):
    for name in ("normviz_no_such_module:X", "subprocess:Popen", "normviz.cli:Command"):
        with pytest.raises(DecodeError, match="not a known result class"):
            decode(planted({"__dataclass__": name, "fields": {}}))
    assert "normviz_no_such_module" not in sys.modules
    spec = "normviz.experiments.activations:ActivationsSpec"  # a spec only through from_dict, which validates
    with pytest.raises(DecodeError, match="is a spec"):
        decode(planted({"__dataclass__": spec, "fields": {"width": 10**9}}))
    with pytest.raises(DecodeError, match="width"):
        decode(planted({"__spec__": spec, "settings": {"width": 10**9}}))
    marker = tmp_path / "ran"
    evil = np.array([Evil(marker)], dtype=object)
    with pytest.raises(DecodeError):
        decode(planted({"__array__": 0}, {"a0": evil}))
    assert not marker.exists()


def test_malicious_pickle_entries_are_never_unpickled(tmp_path):
    folder, marker = tmp_path / "cache", tmp_path / "ran"
    plain = diskcache.Cache(str(folder))  # what anyone with write access could do: diskcache's pickle mode
    plain.set("small", Evil(marker))
    plain.set("large", [Evil(marker), "x" * 100_000])  # above min_file_size: pickled into a file
    plain.close()
    db = sqlite3.connect(folder / "cache.db")
    modes = dict(db.execute("SELECT key, mode FROM Cache").fetchall())
    db.close()
    assert modes == {"small": diskcache.core.MODE_PICKLE, "large": diskcache.core.MODE_PICKLE}
    cache = ResultCache(folder)
    assert cache.get("small") is None and cache.get("large") is None
    assert not marker.exists()
    assert "small" not in cache  # dropped, so the next run's result replaces it


def test_corrupted_and_truncated_entries_read_as_missing(tmp_path, results, caplog):
    cache = ResultCache(tmp_path)
    result = results[activations.ActivationsSpec]
    for key in ("flipped", "truncated", "garbage", "inline"):
        cache.put(key, result)
    cache._cache.set("inline", persist.MAGIC + b"\0" * 50)  # small, so stored in SQLite itself
    db = sqlite3.connect(tmp_path / "cache.db")
    files = dict(db.execute("SELECT key, filename FROM Cache WHERE filename IS NOT NULL").fetchall())
    db.close()
    path = {k: tmp_path / f for k, f in files.items()}
    data = bytearray(path["flipped"].read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit in the middle of an array
    path["flipped"].write_bytes(bytes(data))
    path["truncated"].write_bytes(path["truncated"].read_bytes()[:-1000])
    path["garbage"].write_bytes(os.urandom(5000))
    with caplog.at_level("WARNING", logger="normviz.persist"):
        for key in ("flipped", "truncated", "garbage", "inline"):
            assert cache.get(key) is None, key
            assert cache.get(key) is None  # removed: an ordinary miss now, not logged again
    assert len(caplog.records) == 4
    cache.put("flipped", result)  # the rerun's result takes its place
    assert_same(cache.get("flipped"), result)


def test_a_second_process_serves_what_the_first_stored(tmp_path, results):
    result = results[running_stats.RunningStatsSpec]
    cache = ResultCache(tmp_path)
    cache.put(result.spec.key(), result)
    cache.close()
    script = (
        "import sys; from normviz.persist import ResultCache; "
        "r = ResultCache(sys.argv[1]).get(sys.argv[2]); print(r.steps_done, float(r.loss.sum()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), result.spec.key()],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
    ).stdout.split()
    assert int(out[0]) == result.steps_done and float(out[1]) == float(result.loss.sum())
    assert_same(ResultCache(tmp_path).get(result.spec.key()), result)  # and a new instance in this one


def test_size_bound_drops_least_recently_used_first(tmp_path):
    spec = alternatives.AxesSpec()
    rng = np.random.default_rng(0)

    def entry(i):  # about 64 kB each, stored as a file
        return alternatives.AxesResult(spec, rng.random(8000), i)

    cache = ResultCache(tmp_path, size_limit=2_000_000)
    for i in range(20):
        cache.put(f"k{i}", entry(i))
    for i in range(3):
        assert cache.get(f"k{i}").groups == i  # used again: now the most recent
    i = 20
    while all(f"k{j}" in cache for j in range(3, 20)):  # until the first eviction
        cache.put(f"k{i}", entry(i))
        i += 1
        assert i < 60
    assert all(f"k{j}" in cache for j in range(3)), "recently read entries were dropped"
    assert "k3" not in cache and f"k{i - 1}" in cache
    assert cache.volume() <= 2_000_000 + 70_000


def test_default_cache_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("NORMVIZ_CACHE_DIR", "off")
    assert persist.default_cache() is None
    monkeypatch.setenv("NORMVIZ_CACHE_DIR", str(tmp_path / "here"))
    cache = persist.default_cache()
    assert cache.directory == tmp_path / "here" and (tmp_path / "here" / "cache.db").exists()
    assert persist.default_cache() is cache
    monkeypatch.delenv("NORMVIZ_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert persist.default_cache().directory == tmp_path / "xdg" / "normviz"
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("NORMVIZ_CACHE_DIR", str(blocked))
    assert persist.default_cache() is None


def test_values_other_than_bytes_are_refused(tmp_path):
    cache = ResultCache(tmp_path)
    with pytest.raises(TypeError):
        cache._cache.set("k", {"a": 1})  # the Disk never pickles
    with pytest.raises(TypeError):
        cache._cache.set(("a", 1), b"x")
