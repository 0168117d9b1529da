"""What a run costs before it runs: estimated CPU seconds from a spec, and the cap on runs from the browser.

Each spec class has a work model: multiply-adds of its matrix products (training counts forward and backward,
3x a forward pass) and "ops", the fixed per-layer cost of one training step whatever its size. Seconds are
`factor * (T_MAC * macs + T_OP * ops)`, with T_MAC and T_OP from stacked MLP training steps on one thread
and a factor per class from timing its default (bench/bench_cost.py measures both and compares).

    estimate(spec)        seconds of one core
    check_browser(spec)   raises CostError above cap(), naming the setting to lower and the CLI command
"""

from __future__ import annotations

import dataclasses
import functools
import math
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from normviz.config import Spec, SpecError

# One thread, StackedMLP training steps (bench/bench_cost.py, 2-core machine under load, 2026-11-29): 0.035 ns
# per multiply-add for (2, 1024, 512) products, 0.1 ns for (2, 64, 100) ones; a step costs about 1.6 ms plus
# 0.5 ms per hidden layer before any arithmetic. With the middle value, six step shapes from (2, 64, 16) x 5
# layers to (2, 1024, 512) x 5 and (32, 100, 100) x 5 came within 0.62x-1.33x of their measured times.
T_MAC = 0.05e-9  # seconds per multiply-add
T_OP = 0.5e-3  # seconds per op: one layer of one training step (forward, backward, update)
STEP_OPS = 3  # a training step's ops besides its layers: batch gather, loss, optimizer call
CAP_FACTOR = 3  # the browser runs up to this many times the most expensive shipped setting
DIGITS = (1797, 64, 10)  # the bundled digits: samples, features, classes
SYNTHETIC_SAMPLES, LOCAL_FILE_SAMPLES = 1000, 10_000  # data.py's defaults when n_samples is 0


class CostError(SpecError):
    """A spec too expensive to run from the browser; the message says what to lower and how to run it anyway."""


@dataclass(frozen=True)
class Work:
    macs: float = 0.0
    ops: float = 0.0

    def __add__(self, other: Work) -> Work:
        return Work(self.macs + other.macs, self.ops + other.ops)

    def __mul__(self, n: float) -> Work:
        return Work(self.macs * n, self.ops * n)

    def seconds(self) -> float:
        return T_MAC * self.macs + T_OP * self.ops


@dataclass(frozen=True)
class Data:
    n_train: int
    n_test: int
    n_in: int
    n_out: int
    side: int  # image side (8 for digits, 28 for MNIST)


def data_of(spec) -> Data:
    """Sizes of the data a DataSpec loads, without loading it (files: the sizes data.py assumes)."""
    dataset = getattr(spec, "dataset", "digits")
    n_samples, test_fraction = getattr(spec, "n_samples", 0), getattr(spec, "test_fraction", 0.25)
    if dataset == "digits":
        n, n_in, n_out, side = min(n_samples or DIGITS[0], DIGITS[0]), DIGITS[1], DIGITS[2], 8
    elif dataset in ("moons", "circles", "spirals", "blobs"):
        n, n_in, n_out, side = n_samples or SYNTHETIC_SAMPLES, 2, 4, 1
    else:  # local or uploaded files: MNIST-sized unless told
        n, n_in, n_out, side = n_samples or LOCAL_FILE_SAMPLES, 784, 10, 28
    n_test = max(1, round(n * test_fraction))
    return Data(max(n - n_test, 2), n_test, n_in, n_out, side)


def mlp_macs(n_in: int, width: int, depth: int, n_out: int) -> int:
    """Multiply-adds of one sample's forward pass through the MLP."""
    return n_in * width + (depth - 1) * width * width + width * n_out


def cnn_macs(side: int, channels: tuple[int, int] = (16, 32), n_out: int = 10) -> int:
    """models.SmallCNN: conv3x3 (1 -> c1), conv3x3 stride 2 (c1 -> c2), linear head; convs count 3x (im2col)."""
    c1, c2 = channels
    half = (side + 1) // 2
    return 3 * (side * side * c1 * 9 + half * half * c1 * c2 * 9) + c2 * n_out


def training(steps: float, batch: float, models: float, per_sample: float, layers: float) -> Work:
    """`steps` training steps of `models` stacked copies: forward + backward is 3x the forward multiply-adds."""
    return Work(3 * steps * models * batch * per_sample, steps * (STEP_OPS + layers))


def forward(samples: float, models: float, per_sample: float, calls: float, layers: float) -> Work:
    """Evaluation: `calls` forward passes over `samples` in all."""
    return Work(samples * models * per_sample, calls * layers / 3)


# --- one work model per spec class ----------------------------------------------------------------------
_WORK: dict[str, tuple[str, Callable[[Spec], Work]]] = {}  # class name -> (module, model)


def _register(module: str, name: str):
    def wrap(fn):
        _WORK[name] = (module, fn)
        return fn

    return wrap


@_register("activations", "ActivationsSpec")
def _activations(s) -> Work:
    d, k = data_of(s), 2
    per = mlp_macs(d.n_in, s.width, s.depth, d.n_out)
    records = s.steps // s.probe_every + 2
    probe = training(1, min(256, d.n_train), k, per, 4 * s.depth)  # gradients and histograms of every layer
    evaluate = forward(min(1000, d.n_train) + d.n_test, k, per, 2, s.depth)
    return training(s.steps, min(s.batch_size, d.n_train), k, per, s.depth) + (probe + evaluate) * records


@_register("init_sweep", "InitSweepSpec")
def _init_sweep(s) -> Work:
    d, k = data_of(s), 2 * s.scales
    per, batch = mlp_macs(d.n_in, s.width, s.depth, d.n_out), min(s.batch_size, d.n_train)
    steps = s.epochs * max(d.n_train // batch, 1)
    chunks = math.ceil(d.n_train * k / 8192)
    return training(steps, batch, k, per, s.depth) + forward(d.n_train, k, per, chunks, s.depth) * s.epochs


@_register("running_stats", "RunningStatsSpec")
def _running_stats(s) -> Work:
    d, rows = data_of(s), len(s.momenta) + s.cma
    per, batch = mlp_macs(d.n_in, s.width, s.depth, d.n_out), min(s.batch_size, d.n_train)
    records = s.steps // s.pop_every + 2
    # two population passes over the training set, eval accuracy per tracked row and train-mode accuracy
    population = forward(2 * d.n_train + (rows + 1) * d.n_test, 1, per, 3 + rows, (2 + rows) * s.depth)
    precise = forward(s.recalibrate_batches * batch + d.n_train + (rows + 1) * d.n_test, 1, per, rows + 3, s.depth)
    return training(s.steps, batch, 1, per, 2 * s.depth) + population * records + precise


@_register("inference", "InferenceSpec")
def _inference(s) -> Work:
    d = data_of(s)
    per, cnn = mlp_macs(d.n_in, s.width, s.depth, d.n_out), cnn_macs(d.side)
    batch = min(s.train_batch, d.n_train)
    steps = max(1, s.train_epochs * d.n_train // batch)
    train = training(steps, batch, 1, per, s.depth) + training(steps, batch, 1, cnn, 6)
    # accuracy tables at batch sizes 1..256 (batch 1: one call per test sample), frames one by one, batch-mates
    tables = forward(18 * d.n_test, 1, per + cnn, 4 * d.n_test, s.depth + 6)
    frames = forward(d.n_test, 1, cnn, d.n_test, 6)
    finetune = training(2 * s.finetune_steps, batch, 1, per, 2 * s.depth)
    return train + tables + frames + finetune


@_register("batch_size", "BatchSizeSpec")
def _batch_size(s) -> Work:
    d, k = data_of(s), len(s.norms)
    per = mlp_macs(d.n_in, s.width, s.depth, d.n_out)
    work = Work()
    for b in s.sizes:
        b = min(b, d.n_train)
        work += training(max(1, s.epochs * d.n_train // b), b, k, per, 2 * s.depth)
        work += forward(2 * d.n_test, k, per, 2 * d.n_test / b, s.depth)
    mean_batch = (min(s.stream_max_batch, d.n_train) + 1) / 2
    work += training(s.stream_steps, mean_batch, k, per, 2 * s.depth)
    return work + forward(d.n_test, k, per, 1, s.depth) * (s.stream_steps / 10)


def _zoo_model(model: str) -> tuple[int, int]:
    """(multiply-adds per sample, layers) of norm_zoo's models on the digits."""
    return (cnn_macs(8), 6) if model == "cnn" else (mlp_macs(64, 64, 3, 10), 4)


@_register("norm_zoo", "ZooSpec")
def _norm_zoo(s) -> Work:
    from normviz.experiments.norm_zoo import zoo_norms

    d, (per, layers) = data_of(s), _zoo_model(s.model)
    n, vmap = len(zoo_norms(s.model)), 1 if s.seeds == 1 else 2  # vmapped replicas cost more dispatch
    batch = min(s.batch_size, d.n_train)
    return training(s.steps, batch, n * s.seeds, per, n * layers * vmap) + forward(d.n_test, n * s.seeds, per, 11, n)


@_register("norm_cost", "CostSpec")
def _norm_cost(s) -> Work:
    from normviz.experiments.norm_cost import ROUNDS, STEPS_PER_ROUND, WARMUP, configurations

    per, layers = _zoo_model(s.model)
    steps = ROUNDS * STEPS_PER_ROUND + WARMUP + 10  # + counting the ops once: a dispatch mode, about 10 steps
    return sum((training(steps, b, len(configurations(s)), per, layers) for b in s.cost_batch_sizes), Work())


@_register("sync_bn", "SyncBNSpec")
def _sync_bn(s) -> Work:
    from normviz.experiments.sync_bn import NOISE_DRAWS

    d, (per, layers) = data_of(s), _zoo_model(s.model)
    noise = Work(d.n_train * per, len(s.sub_batches) * NOISE_DRAWS / 50)
    train = sum((training(s.steps, s.workers * b, 2, per, layers * (1 + s.workers / 4)) for b in s.sub_batches), Work())
    return noise + train + forward(d.n_test, 2 * len(s.sub_batches), per, 2, layers)


@_register("rnn_norms", "RNNSpec")
def _rnn_norms(s) -> Work:
    d = data_of(s)
    per = 8 * (8 * 64 + 64 * 64) + 64 * 10  # 8 time steps of an 8-pixel row into 64 hidden units
    batch = min(s.batch_size, d.n_train)
    return training(s.steps, batch, 3, per, 3 * 8) + forward(d.n_test * 3, 3, per * 2, 11 + 6, 8)


@_register("by_hand", "ByHandSpec")
@_register("alternatives", "AxesSpec")
def _instant(s) -> Work:
    return Work(0, 10)


def _why(s, models: int, layers_per_step: float = 1.0) -> tuple[Work, int, int]:
    """The Why-BN experiments' common part: (training of `models` stacked MLPs, per-sample macs, batch)."""
    d = data_of(s)
    per, batch = mlp_macs(d.n_in, s.width, s.depth, d.n_out), min(s.batch_size, d.n_train)
    return training(s.steps, batch, models, per, layers_per_step * s.depth), per, batch


@_register("why_lr_range", "LrRangeSpec")
def _why_lr_range(s) -> Work:
    work, per, _ = _why(s, 2 * s.rates)
    return work + forward(data_of(s).n_test, 2 * s.rates, per, 1, s.depth)


@_register("why_landscape", "LandscapeSpec")
def _why_landscape(s) -> Work:
    work, per, batch = _why(s, 2)
    checks = math.ceil(s.steps / s.check_every)
    return work + training(checks, batch, 2 + 2 * s.step_sizes, per, 2 * s.depth)


@_register("why_noisy", "NoisySpec")
def _why_noisy(s) -> Work:
    work, per, _ = _why(s, 3, layers_per_step=3)  # recorded layers: no in-place steps, moments every step
    return work + forward(data_of(s).n_test, 3, per, 1, s.depth)


@_register("why_scale", "ScaleSpec")
def _why_scale(s) -> Work:
    work, per, _ = _why(s, 3, layers_per_step=2)
    return work + training(4 * s.depth, 256, 3, per, s.depth) * 2  # the float64 check, scaled and not


@_register("why_adabn", "AdaBNSpec")
def _why_adabn(s) -> Work:
    from normviz.experiments.why_adabn import DRAWS, SAMPLE_GRID

    work, per, _ = _why(s, 2)
    d = data_of(s)
    adapted = DRAWS * sum(SAMPLE_GRID) + d.n_train + (len(SAMPLE_GRID) * DRAWS + 1) * d.n_test
    return work + forward(adapted, 1, per, 2 * len(SAMPLE_GRID) * DRAWS, 2 * s.depth)


# measured CPU time of each class's default / its raw estimate (bench/bench_cost.py, 2-core machine under load,
# 2026-11-29); with these, the larger settings there came within 0.6x-1.6x of their measured times
FACTORS = {
    "ActivationsSpec": 1.29,
    "InitSweepSpec": 1.58,
    "RunningStatsSpec": 0.90,
    "InferenceSpec": 0.80,
    "BatchSizeSpec": 0.93,
    "ZooSpec": 1.59,
    "CostSpec": 1.27,
    "SyncBNSpec": 1.05,
    "RNNSpec": 1.56,
    "ByHandSpec": 1.0,  # instant: nothing to calibrate
    "AxesSpec": 1.0,
    "LrRangeSpec": 1.57,  # the Why-BN defaults: CPU time of one run each, load average 9 on 2 cores
    "LandscapeSpec": 1.43,
    "NoisySpec": 0.98,
    "ScaleSpec": 1.32,
    "AdaBNSpec": 1.62,
}


def _key(spec_or_cls) -> str:
    cls = spec_or_cls if isinstance(spec_or_cls, type) else type(spec_or_cls)
    return cls.__name__


def _model(spec: Spec):
    """The registered work model of the spec's own class (not a base class: AlternativesSpec is an AxesSpec)."""
    name = _key(spec)
    entry = _WORK.get(name)
    if entry is None or type(spec).__module__ != f"normviz.experiments.{entry[0]}":
        raise TypeError(f"no cost model for {type(spec).__module__}.{name}")
    return entry[1]


def parts(spec: Spec) -> list[Spec]:
    """The experiment specs a spec runs: the parts of a view's spec, or itself."""
    from normviz import views

    view = views.of_spec(type(spec))
    return [spec] if view is None else [part.spec for part in view.parts(spec)]


def raw_seconds(spec: Spec) -> float:
    """The uncalibrated estimate of one experiment spec (T_MAC and T_OP only)."""
    return _model(spec)(spec).seconds()


def estimate(spec: Spec) -> float:
    """Estimated seconds of one core for the whole run of `spec` (a page's spec: all its parts)."""
    return sum(raw_seconds(p) * FACTORS[_key(p)] for p in parts(spec))


# --- the browser's cap ------------------------------------------------------------------------------------
def shipped_specs() -> list[Spec]:
    """Every default and preset the app ships: each experiment's and each view's default (every one of its
    `view` choices, where it has them), every view's presets and every tour stop."""
    from normviz import views
    from normviz.experiments import spec_classes
    from normviz.lessons.tour import TOUR

    specs = [spec_cls() for spec_cls in spec_classes().values()]
    for v in views.VIEWS:
        cls = v.spec_cls
        specs.append(cls())
        specs += [preset.spec(cls) for preset in v.presets.values()]
        specs += [cls(view=choice) for choice in cls.field_info().get("view", {}).get("choices") or ()]
    for section in TOUR:
        v = views.view(section.view)
        specs += [v.presets[stop.preset].spec(v.spec_cls) for stop in section.stops]
    return list({s.key(): s for s in specs}.values())


@functools.cache
def cap() -> float:
    """CPU seconds a browser run may cost: CAP_FACTOR times the most expensive shipped default or preset."""
    return CAP_FACTOR * max(estimate(s) for s in shipped_specs())


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _lowered(spec: Spec) -> list[tuple[float, str]]:
    """(seconds saved, "lower `width` (now 512)") for each setting whose default would make the run cheaper."""
    default, now = type(spec)(), estimate(spec)
    out = []
    for f in dataclasses.fields(spec):
        value, base = getattr(spec, f.name), getattr(default, f.name)
        if value == base or f.name == "seed" or isinstance(value, (str, bool)):
            continue
        try:
            cheaper = estimate(spec.replace(**{f.name: base}))
        except (SpecError, TypeError):  # the default does not fit with the other settings
            continue
        if cheaper < now:
            size = len(value) if isinstance(value, tuple) else value
            verb = "fewer" if isinstance(value, tuple) else "lower" if base < value else "raise"
            shown = ",".join(map(str, value)) if isinstance(value, tuple) else f"{value:g}"
            text = f"fewer `{f.name}` ({size} now)" if verb == "fewer" else f"{verb} `{f.name}` (now {shown})"
            out.append((now - cheaper, text))
    return sorted(out, reverse=True)


def cli_command(spec: Spec) -> str:
    """The command line that runs `spec` (a view's, or one of its experiments'): the view's command with the
    settings that differ from the defaults."""
    from normviz import views

    default, info = type(spec)().to_query(), type(spec).field_info()
    words = ["python", "-m", "normviz", *views.command_words(type(spec))]
    for field, text in sorted(spec.to_query().items(), key=lambda item: item[0] != "view"):  # the view first
        if text == default[field] or info[field].get("scope", "all") == "session":
            continue
        flag = "--" + field.replace("_", "-")
        if info[field]["kind"] is bool:
            words.append(flag if getattr(spec, field) else "--no-" + flag[2:])
        else:
            words += [flag, text]
    return " ".join(shlex.quote(w) for w in words)


def check_browser(spec: Spec) -> None:
    """Raise CostError if `spec` costs more than the browser's cap; the CLI never calls this. The message is
    Markdown: setting names and the command are `code` (no user text: numbers and the spec's own choices)."""
    seconds, limit = estimate(spec), cap()
    if seconds <= limit:
        return
    helps = [text for _, text in _lowered(spec)[:2]]
    advice = f": {' or '.join(helps)}" if helps else ""
    raise CostError(
        f"This run would take about {duration(seconds)} of CPU (the limit for the browser is {duration(limit)})"
        f"{advice}. The CLI runs it: `{cli_command(spec)}`"
    )
