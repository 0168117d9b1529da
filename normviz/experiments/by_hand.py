"""BN by hand: one BatchNorm1d training step on a small batch, every step in closed form (numpy,
float64), checked against torch.nn.BatchNorm1d and autograd.

    python -m normviz by_hand --x '[[1,2,3],[4,5,6]]' --momentum 0.1 --convention pytorch --json out.json
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from normviz.config import Spec, SpecError, param, quote
from normviz.layers import keras_to_pytorch

DEFAULT_X = "[[1,2,0.5],[3,-1,2],[5,0,-1.5],[7,3,1]]"
MAX_B, MAX_C, MAX_TEXT = 64, 16, 1000
EXAMPLE = "write it like [[1, 2, 3], [4, 5, 6]] (one row per sample)"
TORCH_REFUSAL = "Expected more than 1 value per channel when training"
# the per-feature settings: field -> (row label in the page's table, default value)
VECTORS = {
    "gamma": ("γ (gamma)", 1.0),
    "beta": ("β (beta)", 0.0),
    "running_mean": ("running mean", 0.0),
    "running_var": ("running var", 1.0),
    "x_new": ("new sample", None),
}
TEXT_FIELDS = ("x", *VECTORS, "dy")


@dataclass(frozen=True)
class ByHandSpec(Spec):
    """A batch and a BatchNorm1d layer's parameters and running statistics before one training step."""

    x: str = param(
        DEFAULT_X, "the batch as a JSON matrix: one row per sample, one column per feature", label="Batch x (JSON)"
    )
    gamma: str = param(
        "1", "γ, one value per feature, comma-separated or JSON (one value: all features)", label="γ (gamma)"
    )
    beta: str = param("0", "β, one value per feature (one value: all features)", label="β (beta)")
    eps: float = param(
        1e-5,
        "ε added to the variance (PyTorch's default 1e-5, Keras' 1e-3)",
        lo=1e-8,
        hi=1e3,
        log=True,
        label="ε (eps)",
    )
    convention: str = param(
        "pytorch",
        "how momentum is read: PyTorch (weight of the new batch) or "
        "Keras/TF/Flax (weight of the old running value = 1 - PyTorch's)",
        choices=("pytorch", "keras"),
        label="Momentum convention",
    )
    momentum: float = param(
        0.1,
        "momentum in the chosen convention (PyTorch's default 0.1 = Keras' 0.9; Keras' default 0.99 = PyTorch's 0.01)",
        lo=0.0,
        hi=1.0,
    )
    var_estimator: str = param(
        "unbiased",
        "variance folded into the running var: unbiased, B/(B-1) times the "
        "batch's (PyTorch), or biased (Keras 3, Flax)",
        choices=("unbiased", "biased"),
        label="Running-var estimator",
    )
    running_mean: str = param(
        "0",
        "running mean before this step, one value per feature (one value: all features; PyTorch starts at 0)",
        label="Running mean (before)",
    )
    running_var: str = param(
        "1",
        "running var before this step, one value per feature (one value: all features; PyTorch starts at 1)",
        label="Running var (before)",
    )
    dy: str = param(
        "1",
        "upstream gradient dL/dy: a JSON matrix shaped like x, or one number for all",
        label="Upstream gradient dL/dy",
    )
    x_new: str = param(
        "",
        "a new sample for the eval-mode output, one value per feature (empty: the batch's first sample)",
        label="New sample (eval; empty: sample 1)",
    )
    seed: int = param(0, "seed of the 'randomise' button", lo=0, hi=2**31 - 1)

    def validate(self):
        super().validate()
        arrays = self.arrays()  # raises SpecError naming the field
        b, c = arrays["x"].shape
        canonical = {"x": _format_matrix(arrays["x"])}
        for name in VECTORS:
            text = getattr(self, name).strip()
            values = _parse_vector(name, text, c) if text else None  # one value for all features stays one
            canonical[name] = text and _format_vector(values[:1] if len(_items(name, text)) == 1 else values)
        dy = self.dy.strip()
        canonical["dy"] = dy and (_format_matrix(arrays["dy"]) if dy.startswith("[") else format_number(float(dy)))
        for name, text in canonical.items():  # one spelling per setting: equal batches, equal keys and URLs
            object.__setattr__(self, name, text)

    @classmethod
    def parse_field(cls, name: str, text: str):
        if name in TEXT_FIELDS:  # matrices outgrow the generic 200-character URL limit
            if len(text) > MAX_TEXT:
                raise SpecError(f"{name}: value too long ({len(text)} characters; at most {MAX_TEXT})")
            text = text.strip()
            if name == "x" or (name == "dy" and text.startswith("[")):
                parse_matrix(name, text)  # malformed on its own, not just against the other settings
            elif text:
                _items(name, text)
            return text
        return super().parse_field(name, text)

    @property
    def momentum_pytorch(self) -> float:
        """The weight of the new batch statistic, whatever convention the momentum was given in."""
        return self.momentum if self.convention == "pytorch" else keras_to_pytorch(self.momentum)

    def arrays(self) -> dict[str, np.ndarray]:
        """The settings as float64 arrays: x, dy (B, C); gamma, beta, running_mean, running_var, x_new (C,)."""
        x = parse_matrix("x", self.x)
        b, c = x.shape
        out = {"x": x}
        for name, (_, default) in VECTORS.items():
            text = getattr(self, name).strip()
            out[name] = (
                _parse_vector(name, text, c) if text else (x[0].copy() if default is None else np.full(c, default))
            )
        if (out["running_var"] < 0).any():
            raise SpecError(f"running_var: a variance cannot be negative, got {_format_vector(out['running_var'])}")
        out["dy"] = _parse_dy(self.dy.strip(), b, c)
        return out


def parse_matrix(name: str, text: str) -> np.ndarray:
    """A JSON matrix -> (B, C) float64; a clear SpecError for empty, ragged, non-numeric or non-finite input."""
    if not text.strip():
        raise SpecError(f"{name}: is empty; {EXAMPLE}")
    try:
        rows = json.loads(text, parse_int=float)  # an integer of 400 digits is inf, not an OverflowError
    except json.JSONDecodeError as exc:
        raise SpecError(f"{name}: not valid JSON ({exc.msg} at character {exc.pos + 1}); {EXAMPLE}") from None
    if not isinstance(rows, list):
        raise SpecError(f"{name}: expected a list of rows, got {quote(text)}; {EXAMPLE}")
    if not rows:
        raise SpecError(f"{name}: the batch is empty; give at least one sample, {EXAMPLE}")
    if not all(isinstance(r, list) for r in rows):
        if all(_is_number(r) for r in rows):
            raise SpecError(f"{name}: got a flat list, not a matrix; one sample is written [{quote(text)}]")
        raise SpecError(f"{name}: every row must be a list of numbers; {EXAMPLE}")
    widths = [len(r) for r in rows]
    if 0 in widths:
        raise SpecError(f"{name}: row {widths.index(0) + 1} is empty; every sample needs at least one feature")
    if len(set(widths)) > 1:
        odd = next(i for i, w in enumerate(widths) if w != widths[0])
        raise SpecError(
            f"{name}: rows have different lengths (row 1 has {widths[0]} values, row {odd + 1} has "
            f"{widths[odd]}); every sample needs the same number of features"
        )
    for i, row in enumerate(rows):
        for j, v in enumerate(row):
            if not _is_number(v):
                raise SpecError(f"{name}: row {i + 1}, column {j + 1} is not a number ({quote(json.dumps(v))})")
            if not math.isfinite(v):
                raise SpecError(f"{name}: row {i + 1}, column {j + 1} is not finite ({v})")
    if len(rows) > MAX_B or widths[0] > MAX_C:
        raise SpecError(f"{name}: at most {MAX_B} samples and {MAX_C} features, got {len(rows)} x {widths[0]}")
    return np.array(rows, dtype=np.float64)


def _items(name: str, text: str) -> list:
    """'1,2,3' or '[1,2,3]' -> the numbers as given."""
    if text.startswith("["):
        try:
            items = json.loads(text, parse_int=float)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{name}: not valid JSON ({exc.msg}); write e.g. 1,2,3 or [1,2,3]") from None
        if not isinstance(items, list) or not all(_is_number(v) for v in items):
            raise SpecError(f"{name}: expected a flat list of numbers like [1, 2, 3], got {quote(text)}")
    else:
        items = []
        for k, part in enumerate(text.split(",")):
            try:
                items.append(float(part))
            except ValueError:
                raise SpecError(f"{name}: value {k + 1} is not a number ({quote(part.strip())})") from None
    return items


def _parse_vector(name: str, text: str, c: int) -> np.ndarray:
    """'1,2,3', '[1,2,3]' or one number for every feature -> (C,) float64."""
    values = np.array(_items(name, text), dtype=np.float64)
    if not np.isfinite(values).all():
        raise SpecError(f"{name}: values must be finite numbers, got {quote(text)}")
    if len(values) == 1:
        return np.full(c, values[0])
    if len(values) != c:
        raise SpecError(
            f"{name}: has {len(values)} values but the batch has {c} features "
            "(give one value per feature, or one value for all)"
        )
    return values


def _parse_dy(text: str, b: int, c: int) -> np.ndarray:
    if not text:
        return np.ones((b, c))
    if not text.startswith("["):
        return np.full((b, c), _parse_vector("dy", text, 1)[0]) if "," not in text else _dy_shape_error(b, c)
    dy = parse_matrix("dy", text)
    if dy.shape != (b, c):
        _dy_shape_error(b, c, dy.shape)
    return dy


def _dy_shape_error(b, c, shape=None):
    got = f"is {shape[0]} x {shape[1]}" if shape else "is a list"
    raise SpecError(f"dy: {got} but the batch x is {b} x {c}; give a matrix shaped like x, or one number")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def format_number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


def _format_vector(v: np.ndarray) -> str:
    return ",".join(format_number(t) for t in v)


def _format_matrix(m: np.ndarray) -> str:
    return "[" + ",".join("[" + _format_vector(row) + "]" for row in m) + "]"


# --- the computation ---------------------------------------------------------------------------------


@dataclass
class ByHandResult:
    """Every intermediate of one training step (hand: numpy float64) and torch's numbers for the same step."""

    spec: ByHandSpec
    momentum: float  # PyTorch convention: the weight of the new batch statistic
    inputs: dict  # x, dy (B, C); gamma, beta, running_mean, running_var, x_new (C,) before the step
    hand: dict  # mean, var, var_unbiased, std, x_hat, y, running_mean, running_var(_unbiased/_biased), ...
    torch64: dict | None  # the same quantities from nn.BatchNorm1d + autograd in float64; None if torch refused
    torch32: dict | None  # ... in float32
    torch_error: str | None  # what torch said when it refused (B = 1)
    done: bool = True

    @property
    def progress(self) -> float:
        return 1.0

    @property
    def shape(self) -> tuple[int, int]:
        return self.inputs["x"].shape

    def diff(self, name: str, dtype: str = "float64") -> float | None:
        """max |hand - torch| for one quantity; None when torch refused the batch."""
        ref = self.torch64 if dtype == "float64" else self.torch32
        if ref is None:
            return None
        return float(np.max(np.abs(self.hand[name] - ref[name])))

    def focus(self) -> int:
        """The feature worth a worked example: the first constant one, else the first."""
        x = self.inputs["x"]
        return next((j for j in range(x.shape[1]) if x.shape[0] > 1 and np.ptp(x[:, j]) == 0), 0)

    def summary(self) -> dict:
        """The CLI's JSON: the batch statistics, x_hat, y and the updated running statistics."""
        return {k: self.hand[k].tolist() for k in ("mean", "var", "x_hat", "y", "running_mean", "running_var")}


def by_hand(
    x, gamma, beta, running_mean, running_var, dy, x_new, eps: float, momentum: float, var_estimator: str
) -> dict:
    """One BatchNorm training step and its backward pass in closed form; momentum in PyTorch's convention."""
    b = x.shape[0]
    mean = x.mean(0)  # (C,)
    var = ((x - mean) ** 2).mean(0)  # (C,) biased: what training normalises with
    var_unbiased = var * b / (b - 1) if b > 1 else np.full_like(var, np.nan)  # n/(n-1) is 1/0 for B = 1
    std = np.sqrt(var + eps)
    x_hat = (x - mean) / std  # (B, C)
    y = gamma * x_hat + beta
    rm = (1 - momentum) * running_mean + momentum * mean
    rv_unbiased = (1 - momentum) * running_var + momentum * var_unbiased
    rv_biased = (1 - momentum) * running_var + momentum * var
    rv = rv_unbiased if var_estimator == "unbiased" else rv_biased
    x_hat_new = (x_new - rm) / np.sqrt(rv + eps)
    dbeta = dy.sum(0)
    dgamma = (dy * x_hat).sum(0)
    dx = gamma / (b * std) * (b * dy - dbeta - x_hat * dgamma)  # (B, C)
    return dict(
        mean=mean,
        var=var,
        var_unbiased=var_unbiased,
        std=std,
        x_hat=x_hat,
        y=y,
        running_mean=rm,
        running_var=rv,
        running_var_unbiased=rv_unbiased,
        running_var_biased=rv_biased,
        x_hat_new=x_hat_new,
        y_new=gamma * x_hat_new + beta,
        dbeta=dbeta,
        dgamma=dgamma,
        dx=dx,
    )


def through_torch(inputs: dict, eps: float, momentum: float, var_estimator: str, dtype=torch.float64):
    """The same step through nn.BatchNorm1d and autograd -> (quantities as float64 arrays, None) or
    (None, torch's message) when torch refuses the batch."""
    t = {k: torch.as_tensor(v, dtype=dtype) for k, v in inputs.items()}
    bn = torch.nn.BatchNorm1d(t["x"].shape[1], eps=eps, momentum=momentum, dtype=dtype)
    with torch.no_grad():
        for name, value in (
            ("weight", "gamma"),
            ("bias", "beta"),
            ("running_mean", "running_mean"),
            ("running_var", "running_var"),
        ):
            getattr(bn, name).copy_(t[value])
    x = t["x"].clone().requires_grad_(True)
    try:
        y = bn(x)
    except ValueError as exc:
        return None, str(exc)
    y.backward(t["dy"])
    if var_estimator == "biased":  # nn.BatchNorm1d always folds in B/(B-1)·var; Keras 3 and Flax do not
        with torch.no_grad():
            bn.running_var.copy_((1 - momentum) * t["running_var"] + momentum * x.var(0, correction=0))
    bn.eval()
    with torch.no_grad():
        y_new = bn(t["x_new"][None])[0]
    out = dict(
        y=y,
        running_mean=bn.running_mean,
        running_var=bn.running_var,
        y_new=y_new,
        dgamma=bn.weight.grad,
        dbeta=bn.bias.grad,
        dx=x.grad,
    )
    return {k: v.detach().double().numpy() for k, v in out.items()}, None


def run(spec: ByHandSpec) -> Iterator[ByHandResult]:
    """Instant: yields the one final result (the Iterator keeps the CLI's and the pages' protocol)."""
    inputs, m = spec.arrays(), spec.momentum_pytorch
    hand = by_hand(**inputs, eps=spec.eps, momentum=m, var_estimator=spec.var_estimator)
    torch64, error = through_torch(inputs, spec.eps, m, spec.var_estimator, torch.float64)
    torch32, _ = through_torch(inputs, spec.eps, m, spec.var_estimator, torch.float32)
    yield ByHandResult(spec, m, inputs, hand, torch64, torch32, error)


# --- edits from the page's tables and buttons (pure: spec in, spec out) -----------------------------


def random_batch(b: int, c: int, seed: int) -> np.ndarray:
    """Features with different offsets and scales (so normalising visibly changes them), 2 decimals."""
    rng = np.random.default_rng(seed)
    loc, scale = rng.uniform(-5, 5, c), np.exp(rng.uniform(np.log(0.5), np.log(5), c))
    return np.round(loc + scale * rng.standard_normal((b, c)), 2)


def randomise(spec: ByHandSpec) -> ByHandSpec:
    """A new random batch of the same shape (the next seed); the upstream gradient is kept if it fits."""
    b, c = spec.arrays()["x"].shape
    seed = (spec.seed + 1) % 2**31
    return spec.replace(seed=seed, x=_format_matrix(random_batch(b, c, seed)))


def make_constant(spec: ByHandSpec, j: int) -> ByHandSpec:
    """Feature j takes sample 1's value in every sample."""
    x = spec.arrays()["x"]
    x[:, j] = x[0, j]
    return spec.replace(x=_format_matrix(x))


def resize(spec: ByHandSpec, b: int, c: int) -> ByHandSpec:
    """B samples x C features: keeps the top-left block, fills new cells at random, fits every other setting."""
    a = spec.arrays()
    x = random_batch(b, c, spec.seed + 1)
    old_b, old_c = a["x"].shape
    x[: min(b, old_b), : min(c, old_c)] = a["x"][:b, :c]
    changes = {"x": _format_matrix(x)}
    for name, (_, default) in VECTORS.items():
        text = getattr(spec, name)
        if "," in text:  # one value per feature: trim or pad with the default
            v = np.full(c, 0.0 if default is None else default)
            v[: min(c, old_c)] = a[name][:c]
            changes[name] = _format_vector(v)
    if spec.dy.startswith("["):
        dy = np.ones((b, c))
        dy[: min(b, old_b), : min(c, old_c)] = a["dy"][:b, :c]
        changes["dy"] = _format_matrix(dy)
    return spec.replace(**changes)


def apply_edits(spec: ByHandSpec, table: str, edited_rows: dict) -> ByHandSpec:
    """Cell edits of a page table ({row: {"feature j": value}}) -> a new spec. table: x, dy or params.
    Cleared cells (None) keep their old value."""
    a = spec.arrays()
    if table in ("x", "dy"):
        m = a[table]
        for i, row in edited_rows.items():
            for col, v in row.items():
                if v is not None:
                    m[int(i), int(col.split()[-1]) - 1] = float(v)
        return spec.replace(**{table: _format_matrix(m)})
    names, changes = list(VECTORS), {}
    for i, row in edited_rows.items():
        name = names[int(i)]
        v = a[name]
        for col, value in row.items():
            if value is not None:
                v[int(col.split()[-1]) - 1] = float(value)
        changes[name] = _format_vector(v)
    return spec.replace(**changes)
