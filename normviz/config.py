"""Specs: frozen, validated, hashable settings that round-trip to dicts, JSON and URL query params.

Every field is declared with `param(...)`, which carries its default, its one-line help and its
range or choices; validation, the CLI flags, the URL parser and the page widgets all read that.
"""

from __future__ import annotations

import dataclasses
import json
import math
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_QUERY_VALUE_LEN = 200  # longer URL values are rejected before parsing


@dataclass(frozen=True)
class Preset:
    """A named scenario of a page: the settings it changes from the defaults and what to notice."""

    changes: dict = field(default_factory=dict)
    notice: str = ""

    def spec(self, spec_cls):
        return spec_cls(**self.changes)


class SpecError(ValueError):
    """A setting is out of range or of the wrong type; the message names it."""


# where a field may be set: everywhere, only by the command line (a path on the user's own machine),
# or only by the page from the session (an upload's content hash); the URL and the widgets see the first only
SCOPES = ("all", "cli", "session")


def param(
    default, help: str, *, lo=None, hi=None, choices=None, choice_labels=None, log=False, label=None, scope="all"
):
    """A spec field: default, help line, and the constraints validation enforces. `choice_labels` names the
    choices in the browser (the URL and the CLI keep the short values)."""
    meta = dict(
        help=help, lo=lo, hi=hi, choices=choices, choice_labels=choice_labels, log=log, label=label, scope=scope
    )
    return field(default=default, metadata=meta)


def _kind(f: dataclasses.Field) -> type:
    t = f.type if isinstance(f.type, str) else f.type.__name__
    return {"int": int, "float": float, "str": str, "bool": bool}.get(t, tuple)


def _tuple_item_kind(f: dataclasses.Field) -> type:
    t = f.type if isinstance(f.type, str) else str(f.type)
    return float if "float" in t else int if "int" in t else str


def _parse_scalar(kind: type, text: str):
    text = text.strip()
    if kind is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true/false, got {quote(text)}")
    if kind in (int, float):
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"expected a number, got {quote(text)}") from None
        if kind is float:
            return value
        if not value.is_integer():
            raise ValueError(f"expected a whole number, got {quote(text)}")
        return int(value)
    return text


def _format_scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


@dataclass(frozen=True)
class Spec:
    """Base of every spec: validation on construction and the round-trips."""

    seed: int = param(0, "random seed for data split, init and batch order", lo=0, hi=2**31 - 1)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, self._check(f, getattr(self, f.name)))
        self.validate()

    def validate(self):
        """Checks across fields; subclasses raise SpecError here."""

    @classmethod
    def _check(cls, f: dataclasses.Field, value):
        kind, meta, name = _kind(f), f.metadata, f.name
        if kind is tuple:
            if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
                raise SpecError(f"{name}: expected a list, got {quote(repr(value))}")
            item_kind = _tuple_item_kind(f)
            items = tuple(cls._check_scalar(name, item_kind, meta, v) for v in value)
            if not items:
                raise SpecError(f"{name}: needs at least one value")
            if len(set(items)) != len(items):
                raise SpecError(f"{name}: repeated values in {quote(str(list(items)))}")
            return items
        return cls._check_scalar(name, kind, meta, value)

    @staticmethod
    def _check_scalar(name, kind, meta, value):
        if kind is bool:
            if not isinstance(value, bool):
                raise SpecError(f"{name}: expected true or false, got {quote(repr(value))}")
            return value
        if kind in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SpecError(f"{name}: expected a number, got {quote(repr(value))}")
            if kind is int:
                if isinstance(value, float) and not value.is_integer():
                    raise SpecError(f"{name}: expected a whole number, got {quote(repr(value))}")
                value = int(value)
            else:
                value = float(value)
                if not math.isfinite(value):
                    raise SpecError(f"{name}: must be a finite number, got {quote(repr(value))}")
            lo, hi = meta.get("lo"), meta.get("hi")
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise SpecError(f"{name}: must be between {lo} and {hi}, got {quote(repr(value))}")
            return value
        if not isinstance(value, str):
            raise SpecError(f"{name}: expected text, got {quote(repr(value))}")
        choices = meta.get("choices")
        if choices is not None and value not in choices:
            raise SpecError(f"{name}: must be one of {', '.join(choices)}; got {quote(value)}")
        if len(value) > 1000:
            raise SpecError(f"{name}: text too long ({len(value)} characters)")
        return value

    # --- round trips -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise SpecError(f"unknown setting(s): {', '.join(unknown)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str):
        return cls.from_dict(json.loads(text))

    def key(self) -> str:
        """A stable cache key: the class name and the canonical JSON of the settings."""
        return f"{type(self).__name__}:{self.to_json()}"

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def project(self, spec_cls):
        """The settings `spec_cls` has, as a `spec_cls`: one experiment of a page (its cache key ignores the rest)."""
        return spec_cls(**{name: getattr(self, name) for name in spec_cls.field_info()})

    @classmethod
    def field_info(cls) -> dict[str, dict[str, Any]]:
        """Name -> {kind, item_kind, default, help, lo, hi, choices, log, label} for widgets and CLI."""
        info = {}
        for f in dataclasses.fields(cls):
            kind = _kind(f)
            info[f.name] = dict(
                f.metadata, kind=kind, default=f.default, item_kind=_tuple_item_kind(f) if kind is tuple else None
            )
        return info

    def to_query(self) -> dict[str, str]:
        """The settings a URL carries (not the command line's paths nor a session's upload)."""
        info, out = self.field_info(), {}
        for name, value in self.to_dict().items():
            if info[name]["scope"] == "all":
                out[name] = ",".join(map(_format_scalar, value)) if isinstance(value, list) else _format_scalar(value)
        return out

    @classmethod
    def parse_field(cls, name: str, text: str):
        """Parse one text value (URL or CLI) into the field's type, validated; raises SpecError."""
        info = cls.field_info()[name]
        if len(text) > MAX_QUERY_VALUE_LEN:
            raise SpecError(f"{name}: value too long ({len(text)} characters)")
        try:
            if info["kind"] is tuple:
                value = tuple(_parse_scalar(info["item_kind"], t) for t in text.split(",") if t.strip())
            else:
                value = _parse_scalar(info["kind"], text)
        except ValueError as exc:
            raise SpecError(f"{name}: {exc}") from None
        f = next(f for f in dataclasses.fields(cls) if f.name == name)
        return cls._check(f, value)

    @classmethod
    def from_query(cls, params: Mapping[str, Any], ignore: tuple[str, ...] = ()) -> tuple[Spec, list[str]]:
        """Lenient parse of URL params: every bad value falls back to its default with a warning.

        `params` maps a key to a string or to a list of strings (a repeated key).
        Keys in `ignore` belong to the page (e.g. a preset name) and are not warned about.
        """
        names = {name for name, i in cls.field_info().items() if i["scope"] == "all"}
        values, warnings = {}, []
        for key, raw in params.items():
            if key in ignore:
                continue
            if key not in names:
                warnings.append(unknown_parameter(key))
                continue
            if isinstance(raw, (list, tuple)):
                if len(raw) != 1:
                    warnings.append(f"URL parameter {quote(key)} was given {len(raw)} times; using the default.")
                    continue
                raw = raw[0]
            try:
                values[key] = cls.parse_field(key, str(raw))
            except SpecError as exc:
                warnings.append(f"URL parameter {quote(key)} is invalid ({exc}); using the default.")
        try:
            return cls(**values), warnings
        except SpecError as exc:  # values valid alone but not together
            return cls(), warnings + [f"URL settings do not fit together ({exc}); using the defaults."]


def unknown_parameter(key: str, why: str = "") -> str:
    """The warning for a URL parameter a page does not know (the fuzz tests look for the quoted key)."""
    return f"Ignored unknown URL parameter {quote(key)}{why}."


def clip(text: str, n: int = 40) -> str:
    """A user's text, shortened for a message."""
    return text if len(text) <= n else text[:n] + "…"


def quote(text: str, n: int = 40) -> str:
    """A user's text for a message that is rendered as Markdown: shortened, as inline code (so no link, image,
    emphasis, colour or icon directive takes effect), with backticks and invisible or direction-changing
    characters (RTL override, newline, NUL) written as escapes."""

    def shown(c: str) -> str:
        if c == "`":
            return "ʼ"
        if c in "\\" or unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"):
            return c.encode("unicode_escape").decode("ascii")
        return c

    body = "".join(map(shown, clip(str(text), n)))
    return f"`{body}`" if body.strip() else f"`{body!r}`"


DATASETS = ("digits", "moons", "circles", "spirals", "blobs", "mnist-file", "upload")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "linear")
INITS = ("std", "xavier", "he")


@dataclass(frozen=True)
class DataSpec(Spec):
    """Which data, how much of it, and how it is split and scaled."""

    dataset: str = param(
        "digits",
        "data set: bundled digits, a synthetic 2-D set, MNIST files of the server's data folder, or your upload",
        choices=DATASETS,
    )
    data_file: str = param(
        "", "for mnist-file: an .npz file or IDX folder in the server's data folder (NORMVIZ_DATA_DIR)"
    )
    data_path: str = param("", "for mnist-file: a folder with IDX files (optionally .gz) or an .npz file", scope="cli")
    upload: str = param("", "for upload: the content hash of this session's uploaded file", scope="session")
    n_samples: int = param(
        0,
        "samples to use in all (0: the whole set; synthetic sets default to 1,000)",
        lo=0,
        hi=70_000,
        label="Samples (0 = all)",
    )
    test_fraction: float = param(0.25, "share of samples held out as the test set", lo=0.05, hi=0.9, label="Test share")
    scaling: str = param(
        "standardize",
        "input scaling: each feature to mean 0/std 1 (train-set statistics), "
        "all inputs divided by the largest (pixels to [0, 1], as the book does), or none",
        choices=("standardize", "unit", "none"),
    )
    noise: float = param(0.15, "noise level of the synthetic 2-D sets", lo=0.0, hi=1.0)

    def __post_init__(self):
        # the file settings of a data set not chosen are dropped, so equal runs share one cache key
        if self.dataset != "mnist-file":
            object.__setattr__(self, "data_file", "")
            object.__setattr__(self, "data_path", "")
        if self.dataset != "upload":
            object.__setattr__(self, "upload", "")
        super().__post_init__()

    def validate(self):
        super().validate()
        if self.dataset == "mnist-file" and bool(self.data_file) == bool(self.data_path):
            raise SpecError(
                "data_file: mnist-file needs one file of the server's data folder "
                "(or, on the command line, --data-path to your own files)"
            )
        if self.dataset == "upload" and not self.upload:
            raise SpecError("upload: the upload data set needs a CSV or .npz file; upload one first")


@dataclass(frozen=True)
class ModelSpec(Spec):
    """The MLP: shape, activation, weight init and where BatchNorm sits."""

    depth: int = param(5, "hidden layers", lo=1, hi=10)
    width: int = param(100, "units per hidden layer", lo=4, hi=512)
    activation: str = param("relu", "activation function", choices=ACTIVATIONS)
    init: str = param(
        "std", "weight init: a plain std (DLfS weight_init_std), Xavier or He", choices=INITS, label="Weight init"
    )
    init_std: float = param(
        0.01,
        "weight std when init is 'std' (log scale)",
        lo=1e-4,
        hi=10.0,
        log=True,
        label="Init std (weight_init_std)",
    )
    norm_place: str = param(
        "before",
        "BatchNorm before or after the activation",
        choices=("before", "after"),
        label="BN placement (relative to the activation)",
    )


@dataclass(frozen=True)
class TrainSpec(Spec):
    """Optimiser and schedule."""

    optimizer: str = param("sgd", "optimiser", choices=("sgd", "adam"))
    sgd_momentum: float = param(
        0.0, "SGD momentum (0: plain SGD; not BN's momentum)", lo=0.0, hi=0.99, label="SGD momentum"
    )
    lr: float = param(0.05, "learning rate (0 freezes the weights)", lo=0.0, hi=100.0, log=True, label="Learning rate")
    batch_size: int = param(64, "samples per training step", lo=2, hi=1024, log=True)
    steps: int = param(400, "training steps", lo=1, hi=5000)
    probe_every: int = param(
        20,
        "record telemetry every k steps (at most 500 records a run: longer runs record less often)",
        lo=1,
        hi=1000,
        label="Record every k steps",
    )


class ViewsSpec:
    """A page's spec whose `view` field picks one of several experiments. The subclass sets VIEW_SPECS (view ->
    that experiment's Spec class) and VIEW_FIELDS (view -> the settings its sidebar shows for it)."""

    VIEW_SPECS: dict[str, type] = {}
    VIEW_FIELDS: dict[str, list[str]] = {}

    def sub(self):
        """The spec of the current view."""
        return self.project(self.VIEW_SPECS[self.view])

    @classmethod
    def used_labels(cls, view: str) -> str:
        """The sidebar labels of the settings a view reads."""
        info = cls.field_info()
        return ", ".join(info[f].get("label") or f.replace("_", " ").capitalize() for f in cls.VIEW_FIELDS[view])

    @classmethod
    def sidebar(cls) -> list[str]:
        """Widget order: the view first, then every field some view uses, then the seed."""
        names = ["view"]
        for fields in cls.VIEW_FIELDS.values():
            names += [f for f in fields if f not in names]
        return names + ["seed"]
