"""Finished results on disk, so that a restart or a second server process serves them at once.

A result is stored as plain arrays and JSON (`encode`/`decode`), never as a pickle: the cache folder may be
writable by others, and unpickling runs code. `decode` builds only the classes of `registry()`. The store itself
is diskcache (SQLite index + files), bounded in bytes, least recently used entries dropped first; its Disk is
replaced by one that refuses to pickle or unpickle anything.

    NORMVIZ_CACHE_DIR=/path  (default: ~/.cache/normviz, or $XDG_CACHE_HOME/normviz)
    NORMVIZ_CACHE_DIR=off    no disk cache
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import io
import json
import logging
import math
import os
import threading
from pathlib import Path

import diskcache
import numpy as np

from normviz.config import Spec

log = logging.getLogger(__name__)

MAGIC = b"NVZRES2\n"  # format version: a change of layout changes this, and old entries read as missing
_DIGEST = hashlib.sha256().digest_size
_HEADER = "__header__"
SQLITE_TIMEOUT = 5  # seconds a read or write waits for another process's lock before it counts as a miss


class DecodeError(ValueError):
    """Stored bytes that are not a valid encoded result (corrupted, truncated, foreign or outdated)."""


def _name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


@functools.cache
def registry() -> dict[str, type]:
    """The classes decode may build, by "module:QualName": every dataclass (results, their parts, specs)
    defined in an experiment module."""
    from normviz.experiments import SPECS

    found = {}
    for short in SPECS:
        module = importlib.import_module(f"normviz.experiments.{short}")
        for obj in vars(module).values():
            if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == module.__name__:
                found[_name(obj)] = obj
    return found


def _lookup(name: str) -> type:
    cls = registry().get(name)
    if cls is None:
        raise DecodeError(f"class {name[:80]!r} is not a known result class")
    return cls


class _Encoder:
    """Walks a result into JSON-able data; arrays go to a side list and JSON holds their index."""

    def __init__(self):
        self.arrays: list[np.ndarray] = []

    def array(self, a: np.ndarray) -> int:
        if a.dtype.hasobject:
            raise TypeError("object arrays cannot be stored without pickle")
        self.arrays.append(a)
        return len(self.arrays) - 1

    @staticmethod
    def known(obj) -> str:
        name = _name(type(obj))
        if name not in registry():
            raise TypeError(f"{name} is not a result class of an experiment module")
        return name

    def walk(self, obj):
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int):
            return obj
        if isinstance(obj, float):
            return obj if math.isfinite(obj) else {"__float__": repr(obj)}
        if isinstance(obj, np.ndarray):
            return {"__array__": self.array(obj)}
        if isinstance(obj, np.generic):
            return {"__scalar__": self.array(np.asarray(obj))}
        if isinstance(obj, Spec):
            return {"__spec__": self.known(obj), "settings": obj.to_dict()}
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            fields = {f.name: self.walk(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
            return {"__dataclass__": self.known(obj), "fields": fields}
        if isinstance(obj, list):
            return [self.walk(v) for v in obj]
        if isinstance(obj, tuple):
            return {"__tuple__": [self.walk(v) for v in obj]}
        if isinstance(obj, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in obj):
                return {k: self.walk(v) for k, v in obj.items()}
            return {"__dict__": [[self.walk(k), self.walk(v)] for k, v in obj.items()]}
        raise TypeError(f"cannot store a {type(obj).__name__} without pickle")


def _walk_back(data, arrays: dict[str, np.ndarray]):
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [_walk_back(v, arrays) for v in data]
    if not isinstance(data, dict):
        raise DecodeError(f"unexpected JSON value of type {type(data).__name__}")
    if len(data) == 1:
        ((tag, value),) = data.items()
        if tag == "__float__":
            if value not in ("nan", "inf", "-inf"):
                raise DecodeError("bad float")
            return float(value)
        if tag in ("__array__", "__scalar__"):
            a = arrays[f"a{int(value)}"]
            return a[()] if tag == "__scalar__" else a
        if tag == "__tuple__":
            return tuple(_walk_back(v, arrays) for v in value)
        if tag == "__dict__":
            return {_walk_back(k, arrays): _walk_back(v, arrays) for k, v in value}
    if data.keys() == {"__spec__", "settings"}:
        cls = _lookup(data["__spec__"])
        if not (isinstance(cls, type) and issubclass(cls, Spec)):
            raise DecodeError(f"{data['__spec__']} is not a spec")
        return cls.from_dict(data["settings"])
    if data.keys() == {"__dataclass__", "fields"}:
        cls = _lookup(data["__dataclass__"])
        if issubclass(cls, Spec):  # specs are built through their validation only
            raise DecodeError(f"{data['__dataclass__']} is a spec")
        names = [f.name for f in dataclasses.fields(cls)]
        if sorted(names) != sorted(data["fields"]):  # stored by another version of the class
            raise DecodeError(f"{data['__dataclass__']}: stored fields differ from the class's")
        obj = cls.__new__(cls)  # no __init__/__post_init__: the stored state exactly
        for name in names:
            object.__setattr__(obj, name, _walk_back(data["fields"][name], arrays))
        return obj
    if any(k.startswith("__") for k in data):
        raise DecodeError("unknown tag in stored JSON")
    return {k: _walk_back(v, arrays) for k, v in data.items()}


def encode(result) -> bytes:
    """One result as bytes: a magic line, a SHA-256 of the rest, then an .npz of its arrays and a JSON header."""
    enc = _Encoder()
    header = json.dumps(enc.walk(result), allow_nan=False, separators=(",", ":")).encode()
    buffer = io.BytesIO()
    members = {f"a{i}": a for i, a in enumerate(enc.arrays)}
    np.savez(buffer, **members, **{_HEADER: np.frombuffer(header, np.uint8)})
    payload = buffer.getvalue()
    return MAGIC + hashlib.sha256(payload).digest() + payload


def decode(data: bytes):
    """The result `encode` wrote; raises DecodeError for anything else (it never unpickles)."""
    if not isinstance(data, bytes) or not data.startswith(MAGIC):
        raise DecodeError("not an encoded result (or another format version)")
    digest, payload = data[len(MAGIC) : len(MAGIC) + _DIGEST], data[len(MAGIC) + _DIGEST :]
    if hashlib.sha256(payload).digest() != digest:
        raise DecodeError("checksum mismatch: the entry is corrupted or truncated")
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        header = json.loads(arrays.pop(_HEADER).tobytes())
        return _walk_back(header, arrays)
    except DecodeError:
        raise
    except Exception as exc:  # noqa: BLE001 (a valid checksum over bad content: written by something else)
        raise DecodeError(f"unreadable entry: {type(exc).__name__}: {exc}") from None


class UnsafeEntry(ValueError):
    """An entry diskcache would have to unpickle (or any mode this cache never writes)."""


class BytesOnlyDisk(diskcache.Disk):
    """diskcache's Disk for str/bytes keys and bytes values only: it never pickles or unpickles."""

    def put(self, key):
        if not isinstance(key, str):
            raise TypeError("keys are str")
        return super().put(key)

    def get(self, key, raw):
        if not raw:
            raise UnsafeEntry("a pickled key")
        return super().get(key, raw)

    def store(self, value, read, key=diskcache.core.UNKNOWN):
        if type(value) is not bytes:
            raise TypeError("values are bytes")
        return super().store(value, read, key)

    def fetch(self, mode, filename, value, read):
        if mode not in (diskcache.core.MODE_RAW, diskcache.core.MODE_BINARY) or read:
            raise UnsafeEntry(f"an entry stored in mode {mode}")
        return super().fetch(mode, filename, value, read)


class ResultCache:
    """Finished results on disk by key: bounded in bytes, least recently used dropped first.

    Safe to share between threads and processes (diskcache locks through SQLite). A missing, corrupted,
    truncated, outdated or foreign entry reads as None; each kind of problem is logged once per process."""

    def __init__(self, directory: str | os.PathLike | None = None, size_limit: int = 2 * 2**30):
        self.directory = Path(directory) if directory is not None else default_directory()
        self._cache = diskcache.Cache(
            str(self.directory),
            size_limit=size_limit,
            eviction_policy="least-recently-used",
            disk=BytesOnlyDisk,
            timeout=SQLITE_TIMEOUT,
        )
        self._logged: set[str] = set()
        self._lock = threading.Lock()

    def __repr__(self):
        return f"ResultCache({str(self.directory)!r}, {len(self._cache)} entries, {self.volume()} bytes)"

    def get(self, key: str):
        """The stored result, or None (missing or unusable; an unusable entry is removed)."""
        try:
            data = self._cache.get(key)
            return None if data is None else decode(data)
        except (DecodeError, UnsafeEntry) as exc:
            self._warn_once(key, f"ignored the disk cache entry for {key[:80]!r}: {exc}")
            try:
                self._cache.delete(key)
            except Exception:  # noqa: BLE001, S110 (already reported; the next put overwrites it)
                pass
        except Exception as exc:  # noqa: BLE001 (a locked or broken cache must never reach a page)
            self._warn_once(key, f"could not read the disk cache entry for {key[:80]!r}: {exc}")
        return None

    def put(self, key: str, result) -> None:
        """Store a finished result; a result that cannot be stored (or a full disk) is logged, not raised."""
        try:
            self._cache.set(key, encode(result))
        except Exception as exc:  # noqa: BLE001 (the run's result is still served from memory)
            self._warn_once(key, f"could not store {key[:80]!r} in the disk cache: {exc}")

    def volume(self) -> int:
        """Bytes on disk (values and the SQLite index)."""
        return self._cache.volume()

    def __contains__(self, key: str) -> bool:
        return key in self._cache

    def close(self) -> None:
        self._cache.close()

    def _warn_once(self, key: str, message: str) -> None:
        with self._lock:
            if key in self._logged:
                return
            self._logged.add(key)
        log.warning(message)


def default_directory() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "normviz"


_default: ResultCache | None = None
_default_lock = threading.Lock()


def default_cache() -> ResultCache | None:
    """The process-wide cache: NORMVIZ_CACHE_DIR names the folder, `off` disables it; None when disabled or
    when the folder cannot be opened (logged: the app then keeps results in memory only)."""
    global _default
    where = os.environ.get("NORMVIZ_CACHE_DIR", "").strip()
    if where.lower() == "off":
        return None
    with _default_lock:
        directory = Path(where) if where else default_directory()
        if _default is None or _default.directory != directory:
            try:
                _default = ResultCache(directory)
            except Exception as exc:  # noqa: BLE001 (an unusable folder must not stop the app)
                log.warning("disk cache disabled: cannot open %s: %s", directory, exc)
                return None
        return _default
