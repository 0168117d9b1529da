"""Running statistics: one training run tracks BN's running mean/var for several momenta at once and
compares them with the population statistics every k steps.

    python -m normviz running_stats --momenta 0.01,0.1,0.5 --lr 0 --steps 800 --json momenta.json

Running statistics never change the training path in train mode, so one network (a StackedMLP with
K=1) carries one set of running buffers per momentum plus the cumulative average (`momentum=None`).
Row i of every buffer belongs to `spec.momenta[i]`; with `cma`, the last row is the cumulative average.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from normviz.config import DataSpec, ModelSpec, SpecError, param
from normviz.data import load_checked
from normviz.layers import normalize
from normviz.probes import record_every
from normviz.runs import Throttle
from normviz.runtime import check_cancelled
from normviz.stacked import StackedMLP, StackShape, make_optimizer, stacked_cross_entropy
from normviz.train import BatchSampler, accuracy

PYTORCH_DEFAULT = (0.001, 0.01, 0.1, 0.5)
KERAS_DEFAULT = tuple(round(1.0 - m, 12) for m in PYTORCH_DEFAULT)  # (0.999, 0.99, 0.9, 0.5)
CONVENTIONS = {"pytorch": "PyTorch", "keras": "Keras"}
RAMP_END = 0.1  # the ramp ends at this share of the starting momentum
TRACE_CHANNELS = 16  # channels per layer whose trajectories are kept (Chart A); errors use all channels
MAX_TRACE = 1000  # at most this many trajectory points per run (long runs keep every k-th step)
POPULATIONS = {
    "precise": "(a) PreciseBN: average of the per-batch statistics over one pass of the training set in "
    "batches of the training size, train mode (what an EMA converges to)",
    "eval": "(b) what eval mode meets: the whole training set, layer by layer, every earlier layer already "
    "normalised with its own population statistics",
}


def translate(momenta: tuple[float, ...], convention: str) -> tuple[float, ...]:
    """Momenta written in `convention` -> PyTorch convention (and back: 1 - m is its own inverse)."""
    return tuple(momenta) if convention == "pytorch" else tuple(round(1.0 - m, 12) for m in momenta)


def momentum_text(m: float) -> str:
    """A momentum as the user wrote it: 0.1 -> '0.1', 1.0 -> '1'."""
    s = repr(float(m))
    return s[:-2] if s.endswith(".0") else s


@dataclass(frozen=True)
class RunningStatsSpec(ModelSpec, DataSpec):
    """Everything the Running statistics view trains with."""

    momenta: tuple[float, ...] = param(
        PYTORCH_DEFAULT,
        "momenta to track, in the chosen convention (default 0.001,0.01,0.1,0.5 in PyTorch's; "
        "written 0.999,0.99,0.9,0.5 in Keras')",
        lo=0.0,
        hi=1.0,
    )
    cma: bool = param(
        True,
        "also track the cumulative average (PyTorch momentum=None: 1/num_batches_tracked)",
        label="Cumulative average (momentum=None)",
    )
    convention: str = param(
        "pytorch",
        "how momenta are written: PyTorch (weight of the new batch) or "
        "Keras/TF/Flax (weight of the old value = 1 - PyTorch's)",
        choices=tuple(CONVENTIONS),
    )
    var_estimator: str = param(
        "unbiased",
        "running var from the unbiased batch variance n/(n-1) (PyTorch, "
        "TF fused) or the biased one (Keras 3, Flax, the book)",
        choices=("unbiased", "biased"),
    )
    running_init: str = param(
        "pytorch", "running stats start at mean 0, var 1 (PyTorch) or at 0 (the book)", choices=("pytorch", "zeros")
    )
    bias_correction: bool = param(
        False,
        "divide each EMA by 1-(1-m)^t as Adam does (no framework does; removes "
        "the start-up bias and makes the running init irrelevant)",
    )
    schedule: str = param(
        "constant",
        "momentum schedule: constant, or a linear ramp from m down to m/10 at the last step so the estimates settle",
        choices=("constant", "ramp"),
    )
    lr: float = param(
        0.05, "SGD learning rate (0 freezes the network: a stationary population)", lo=0.0, hi=10.0, log=True
    )
    batch_size: int = param(64, "samples per training step", lo=2, hi=1024, log=True)
    steps: int = param(500, "training steps", lo=1, hi=5000)
    pop_every: int = param(
        10,
        "compute population statistics and accuracies every k steps (at most 500 times a run: longer runs less often)",
        lo=1,
        hi=1000,
    )
    recalibrate_batches: int = param(
        20,
        "PreciseBN after training: recompute the running stats from N training batches",
        lo=1,
        hi=1000,
        label="PreciseBN batches N",
    )
    depth: int = param(3, "hidden layers (each with BatchNorm)", lo=1, hi=10)
    width: int = param(64, "units per hidden layer", lo=4, hi=512)
    init: str = param(
        "he", "weight init: a plain std (DLfS weight_init_std), Xavier or He", choices=("std", "xavier", "he")
    )

    def __post_init__(self):
        # the default list means the same four momenta, written in the chosen convention
        if self.convention == "keras" and tuple(self.momenta) == PYTORCH_DEFAULT:
            object.__setattr__(self, "momenta", KERAS_DEFAULT)
        super().__post_init__()

    def validate(self):
        super().validate()
        if self.convention == "pytorch" and min(self.momenta) <= 0:
            raise SpecError(
                f"momenta: PyTorch-convention momenta lie in (0, 1] (0 never updates); got {list(self.momenta)}"
            )
        if self.convention == "keras" and max(self.momenta) >= 1:
            raise SpecError(
                f"momenta: Keras-convention momenta lie in [0, 1) (1 never updates); got {list(self.momenta)}"
            )
        if len(self.momenta) > 8:
            raise SpecError(f"momenta: at most 8 at once, got {len(self.momenta)}")

    @property
    def pytorch_momenta(self) -> tuple[float, ...]:
        return translate(self.momenta, self.convention)

    def row_labels(self) -> list[str]:
        """One label per tracked row, naming its convention (and PyTorch's value when it is Keras')."""
        labels = []
        for m, pt in zip(self.momenta, self.pytorch_momenta):
            labels.append(
                f"PyTorch {momentum_text(m)}"
                if self.convention == "pytorch"
                else f"Keras {momentum_text(m)} (PyTorch {momentum_text(pt)})"
            )
        return labels + (["CMA (momentum=None)"] if self.cma else [])

    def row_keys(self) -> list[str]:
        """JSON keys: each momentum as given, and 'cma'."""
        return [momentum_text(m) for m in self.momenta] + (["cma"] if self.cma else [])

    def row_momenta(self) -> list[float | None]:
        """PyTorch-convention momentum of each row; None for the cumulative average."""
        return list(self.pytorch_momenta) + ([None] if self.cma else [])


def schedule_momenta(base: tuple[float, ...], step: int, steps: int, schedule: str) -> tuple[float, ...]:
    """PyTorch-convention momenta used at `step` (1-based): constant, or the ramp
    m_t = m * (1 - (1 - RAMP_END) * (t - 1) / (T - 1)), from m at the first step down to m/10 at the last."""
    if schedule == "constant" or steps <= 1:
        return tuple(base)
    share = 1.0 - (1.0 - RAMP_END) * (step - 1) / (steps - 1)
    return tuple(m * share for m in base)


@dataclass
class RunningStatsResult:
    spec: RunningStatsSpec
    models = ("network",)  # one network; every momentum's running statistics ride on it
    steps_done: int = 0
    done: bool = False
    diverged_at: list = field(default_factory=lambda: [None])  # per model (one network): step or None
    loss: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # (S,) per step
    # trajectories of the first TRACE_CHANNELS channels of every layer, every `stride` steps (step 0 first)
    trace_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (S',)
    running_mean: np.ndarray = None  # (S', L, R, Ct) what eval mode uses (bias-corrected when asked)
    running_var: np.ndarray = None  # (S', L, R, Ct)
    batch_mean: np.ndarray = None  # (S', L, Ct) this step's batch mean (nan at step 0)
    batch_var: np.ndarray = None  # (S', L, Ct) in the running var's estimator (unbiased or biased)
    # every pop_every steps
    pop_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (T,)
    pop_mean: dict = field(default_factory=dict)  # population -> (T, L, Ct)
    pop_var: dict = field(default_factory=dict)
    err_mean: dict = field(default_factory=dict)  # population -> (T, L, R): mean over channels
    err_var: dict = field(default_factory=dict)
    eval_acc: np.ndarray = None  # (T, R) test accuracy in eval mode with row i's running stats
    train_acc: np.ndarray = None  # (T,) test accuracy in train mode (batch statistics, batches of B)
    precise: dict | None = None  # PreciseBN after training: batches, before (R,), after, err_mean, err_var

    @property
    def progress(self) -> float:
        return self.steps_done / self.spec.steps

    @property
    def labels(self) -> list[str]:
        return self.spec.row_labels()

    @property
    def row_momenta(self) -> list[float | None]:
        return self.spec.row_momenta()

    def summary(self) -> dict:
        """The JSON the CLI writes: channel-averaged errors (population (a)) and accuracies at pop steps."""
        keys = self.spec.row_keys()
        err_m, err_v = self.err_mean["precise"].mean(1), self.err_var["precise"].mean(1)  # (T, R)
        out = {
            "convention": self.spec.convention,
            "momenta": list(self.spec.momenta),
            "cma": self.spec.cma,
            "steps": self.pop_steps.tolist(),
            "error": {k: {"mean": err_m[:, i].tolist(), "var": err_v[:, i].tolist()} for i, k in enumerate(keys)},
            "eval_acc": {k: self.eval_acc[:, i].tolist() for i, k in enumerate(keys)},
            "train_acc": self.train_acc.tolist(),
            "population": POPULATIONS["precise"],
            "pytorch_momenta": list(self.spec.pytorch_momenta),
            "diverged_at": self.diverged_at[0],
            "spec": self.spec.to_dict(),
        }
        if self.precise is not None:
            p = self.precise
            out["precise_bn"] = {
                "batches": p["batches"],
                "eval_acc_before": dict(zip(keys, p["before"])),
                "eval_acc_after": p["after"],
                "error_after": {"mean": p["err_mean"], "var": p["err_var"]},
            }
        return out


def build_model(spec: RunningStatsSpec, n_in: int, n_out: int, generator: torch.Generator) -> StackedMLP:
    """One BN network (K=1) whose RunningStats track every momentum of the spec at once."""
    shape = StackShape(n_in, n_out, spec.depth, spec.width, spec.activation, spec.norm_place)
    return StackedMLP(
        shape,
        [spec.init_std],
        n_bn=1,
        weight_init=spec.init,
        generator=generator,
        momenta=spec.pytorch_momenta,
        cma=spec.cma,
        init=spec.running_init,
        var_estimator=spec.var_estimator,
        bias_correction=spec.bias_correction,
    )


@torch.no_grad()
def probe_batches(model: StackedMLP, xb: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Train-mode forward of many batches at once, each normalised with its own batch statistics and
    the running stats untouched. xb (nb, B, n_in) -> every BN layer's input (nb, B, C), logits (nb, B, n_out).
    With nb = 1 and the whole set as the batch, every layer normalises with its full-set statistics."""
    before = model.shape.norm_place == "before"
    h = torch.matmul(xb, model.weights[0]) + model.biases[0]  # (nb, B, C): the K=1 weights broadcast
    inputs = []
    for layer in range(model.shape.depth):
        check_cancelled()  # population statistics of a large set take a while
        if layer:
            h = torch.matmul(h, model.weights[layer]) + model.biases[layer]
        z = h if before else model.act(h)
        inputs.append(z)
        var, mean = torch.var_mean(z, 1, keepdim=True, unbiased=False)  # (nb, 1, C): each batch its own
        normed = normalize(z, mean, var, model.eps) * model.gammas[layer] + model.betas[layer]
        h = model.act(normed) if before else normed
    return inputs, torch.matmul(h, model.weights[-1]) + model.biases[-1]


def population_batches(n: int, batch_size: int, seed: int) -> list[torch.Tensor]:
    """Population (a) uses one fixed pass: a fixed permutation cut into full batches of the training size."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1))
    return list(order[: n // batch_size * batch_size].split(batch_size))


def in_batches(x: torch.Tensor, batches: list[torch.Tensor]) -> torch.Tensor:
    """(N, D) and equal-size index batches -> (nb, B, D)."""
    return x[torch.stack(batches)]


@torch.no_grad()
def batch_average(
    model: StackedMLP, x: torch.Tensor, batches: list[torch.Tensor], var_estimator: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """PreciseBN: the equal-weight average of each layer's per-batch mean and variance in train mode
    (batch statistics everywhere), the variance in the running var's estimator. -> (L, C) each."""
    inputs, _ = probe_batches(model, in_batches(x, batches))
    stats = [torch.var_mean(h, 1, unbiased=var_estimator == "unbiased") for h in inputs]  # (nb, C) each
    return torch.stack([m.mean(0) for _, m in stats]), torch.stack([v.mean(0) for v, _ in stats])


@torch.no_grad()
def eval_population(model: StackedMLP, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What eval mode meets, layer by layer: one forward of the whole set with batch statistics, so every
    layer normalises with its own full-set statistics before the next one is measured. -> (L, C) each,
    the variance over the N samples of the set (divided by N, whatever the running var's estimator)."""
    inputs, _ = probe_batches(model, x.unsqueeze(0))
    stats = [torch.var_mean(h[0], 0, unbiased=False) for h in inputs]
    return torch.stack([m for _, m in stats]), torch.stack([v for v, _ in stats])


def estimate_errors(
    run_mean: torch.Tensor, run_var: torch.Tensor, pop_mean: torch.Tensor, pop_var: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """|rm - pm| / sqrt(pv) and |rv / pv - 1| averaged over channels; eps is added to both variances
    as eval mode does (it keeps a dead channel finite). run_* (L, R, C), pop_* (L, C) -> (L, R) each."""
    pm, pv = pop_mean.unsqueeze(1), pop_var.unsqueeze(1) + eps
    return ((run_mean - pm).abs() / pv.sqrt()).mean(-1), ((run_var + eps) / pv - 1).abs().mean(-1)


def running_estimates(model: StackedMLP) -> tuple[torch.Tensor, torch.Tensor]:
    """Every layer's running (mean, var) as eval mode uses them: (L, R, C) each."""
    est = [s.estimates() for s in model.stats]
    return torch.stack([m[:, 0] for m, _ in est]), torch.stack([v[:, 0] for _, v in est])


def set_momenta(model: StackedMLP, momenta: tuple[float, ...]):
    """This step's momenta (a schedule) for every layer's RunningStats."""
    for stats in model.stats:
        stats.momenta = momenta


@torch.no_grad()
def train_mode_accuracy(model: StackedMLP, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    """Accuracy with batch statistics on the first floor(N/B)*B samples of x, in batches of B."""
    nb = max(len(x) // batch_size, 1)
    b = min(batch_size, len(x))
    _, logits = probe_batches(model, x[: nb * b].reshape(nb, b, -1))
    return float((logits.argmax(-1) == y[: nb * b].reshape(nb, b)).float().mean())


@torch.no_grad()
def precise_bn(model: StackedMLP, x: torch.Tensor, batches: list[torch.Tensor], var_estimator: str) -> StackedMLP:
    """A copy of the model whose every running-stat row is replaced by the PreciseBN average over `batches`."""
    fixed = copy.deepcopy(model)
    mean, var = batch_average(model, x, batches, var_estimator)
    for layer, stats in enumerate(fixed.stats):
        stats.mean.copy_(mean[layer].reshape(1, 1, -1).expand_as(stats.mean))
        stats.var.copy_(var[layer].reshape(1, 1, -1).expand_as(stats.var))
        stats.weight_seen.fill_(1.0)  # a finished average: nothing left for bias correction to undo
    return fixed


def run(spec: RunningStatsSpec) -> Iterator[RunningStatsResult]:
    """Train once while tracking every momentum; yields growing partial results and the final one."""
    data = load_checked(spec)
    x, y = data.x_train, data.y_train
    if spec.batch_size > len(x):
        raise SpecError(f"batch_size: {spec.batch_size} is larger than the {len(x)} training samples")
    gen = torch.Generator().manual_seed(spec.seed)
    model = build_model(spec, data.n_features, data.n_classes, gen)
    opt = make_optimizer(model.parameters(), "sgd", spec.lr)
    sampler = BatchSampler(len(x), spec.batch_size, gen)
    pop_batches = population_batches(len(x), spec.batch_size, spec.seed)
    rows, ct = len(spec.row_momenta()), min(spec.width, TRACE_CHANNELS)
    stride = max(1, math.ceil(spec.steps / MAX_TRACE))
    pop_every = record_every(spec.pop_every, spec.steps)
    eps = model.eps
    rec: dict[str, list] = {
        k: [] for k in ("loss", "trace_steps", "rm", "rv", "bm", "bv", "pop_steps", "eval_acc", "train_acc")
    }
    pops = {p: {k: [] for k in ("mean", "var", "err_mean", "err_var")} for p in POPULATIONS}
    state = {"step": 0, "diverged_at": None, "precise": None}
    throttle = Throttle()

    def record_trace(batch_stats):
        rm, rv = running_estimates(model)
        rec["trace_steps"].append(state["step"])
        rec["rm"].append(rm[..., :ct].numpy().copy())
        rec["rv"].append(rv[..., :ct].numpy().copy())
        rec["bm"].append(batch_stats[0])
        rec["bv"].append(batch_stats[1])

    def record_population():
        rm, rv = running_estimates(model)
        for name, (pm, pv) in (
            ("precise", batch_average(model, x, pop_batches, spec.var_estimator)),
            ("eval", eval_population(model, x)),
        ):
            err_m, err_v = estimate_errors(rm, rv, pm, pv, eps)
            pops[name]["mean"].append(pm[:, :ct].numpy())
            pops[name]["var"].append(pv[:, :ct].numpy())
            pops[name]["err_mean"].append(err_m.numpy())
            pops[name]["err_var"].append(err_v.numpy())
        rec["eval_acc"].append(
            [float(accuracy(model, data.x_test, data.y_test, "eval", eval_row=i)[0]) for i in range(rows)]
        )
        rec["train_acc"].append(train_mode_accuracy(model, data.x_test, data.y_test, spec.batch_size))
        rec["pop_steps"].append(state["step"])

    def snapshot(done: bool) -> RunningStatsResult:
        f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
        stacked = {p: {k: f32(v) for k, v in d.items()} for p, d in pops.items()}
        return RunningStatsResult(
            spec,
            state["step"],
            done,
            [state["diverged_at"]],
            f32(rec["loss"]),
            np.array(rec["trace_steps"]),
            f32(rec["rm"]),
            f32(rec["rv"]),
            f32(rec["bm"]),
            f32(rec["bv"]),
            np.array(rec["pop_steps"]),
            {p: d["mean"] for p, d in stacked.items()},
            {p: d["var"] for p, d in stacked.items()},
            {p: d["err_mean"] for p, d in stacked.items()},
            {p: d["err_var"] for p, d in stacked.items()},
            f32(rec["eval_acc"]).reshape(-1, rows),
            f32(rec["train_acc"]),
            state["precise"],
        )

    nan_stats = (np.full((spec.depth, ct), np.nan, np.float32),) * 2
    record_trace(nan_stats)
    record_population()
    yield snapshot(False)
    factor = spec.batch_size / (spec.batch_size - 1) if spec.var_estimator == "unbiased" else 1.0
    key, captured = ("linear" if spec.norm_place == "before" else "act"), []

    def capture(layer, acts):  # this step's BN inputs of the traced channels: (B, Ct) per layer
        captured.append(acts[key][0, :, :ct])

    for step in range(1, spec.steps + 1):
        state["step"] = step
        set_momenta(model, schedule_momenta(spec.pytorch_momenta, step, spec.steps, spec.schedule))
        idx = sampler.next()
        captured.clear()
        logits = model(x[idx], "train", record=capture)
        loss = stacked_cross_entropy(logits, y[idx])[0]
        # huge activations can overflow a batch variance to inf while the normalised output (and loss) stay finite
        if not torch.isfinite(loss) or not all(torch.isfinite(s.var).all() for s in model.stats):
            state["diverged_at"] = step
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec["loss"].append(loss.item())
        if step % stride == 0 or step == spec.steps:
            with torch.no_grad():
                stats = [torch.var_mean(h, 0, unbiased=False) for h in captured]
                record_trace(
                    (torch.stack([m for _, m in stats]).numpy(), torch.stack([v for v, _ in stats]).numpy() * factor)
                )
        if step % pop_every == 0 or step == spec.steps:
            record_population()
        if throttle.due():
            yield snapshot(False)
    if state["diverged_at"] is None:
        state["precise"] = recalibrate(model, spec, data, rows)
    yield snapshot(True)


def recalibrate(model: StackedMLP, spec: RunningStatsSpec, data, rows: int) -> dict:
    """PreciseBN after training: running stats recomputed from N random training batches; eval accuracy
    before (per row) and after, and the errors after against population (a)."""
    gen = torch.Generator().manual_seed(spec.seed + 2)
    sampler = BatchSampler(len(data.x_train), spec.batch_size, gen)
    batches = [sampler.next() for _ in range(spec.recalibrate_batches)]
    fixed = precise_bn(model, data.x_train, batches, spec.var_estimator)
    before = [float(accuracy(model, data.x_test, data.y_test, "eval", eval_row=i)[0]) for i in range(rows)]
    after = float(accuracy(fixed, data.x_test, data.y_test, "eval", eval_row=0)[0])
    full = population_batches(len(data.x_train), spec.batch_size, spec.seed)
    pm, pv = batch_average(model, data.x_train, full, spec.var_estimator)
    rm, rv = running_estimates(fixed)
    err_m, err_v = estimate_errors(rm[:, :1], rv[:, :1], pm, pv, model.eps)
    return {
        "batches": spec.recalibrate_batches,
        "before": before,
        "after": after,
        "err_mean": float(err_m.mean()),
        "err_var": float(err_v.mean()),
    }


def effective_window(m: float) -> float:
    """About how many recent batches an EMA with PyTorch momentum m averages: 1/m."""
    return 1.0 / m


def start_value_left(spec: RunningStatsSpec) -> list[float]:
    """prod_t (1 - m_t) over the run for each momentum: the weight the EMA still gives its start value."""
    steps = np.arange(1, spec.steps + 1)
    share = 1.0 - (1.0 - RAMP_END) * (steps - 1) / max(spec.steps - 1, 1) if spec.schedule == "ramp" else 1.0
    return [float(np.prod(1.0 - m * np.broadcast_to(share, steps.shape))) for m in spec.pytorch_momenta]


def translated_text(text: str) -> str:
    """Momenta typed in one convention, rewritten in the other; text that does not parse stays as it is."""
    try:
        momenta = RunningStatsSpec.parse_field("momenta", text)
    except SpecError:
        return text
    return ",".join(momentum_text(m) for m in translate(momenta, "keras"))
