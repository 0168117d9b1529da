"""(cost) normviz/cost.py's estimates against CPU time: single training steps of several shapes (where T_MAC and
T_OP come from), each experiment's default (which sets its class's factor in cost.FACTORS) and larger settings
(which check how the work model extrapolates). Target: every run's estimate within 3x of its measured CPU time.

    python -m bench.bench_cost            # defaults and larger settings, about 3 CPU-minutes
    python -m bench.bench_cost --quick    # defaults only
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import torch

from bench.common import Row
from normviz import cost
from normviz.experiments import run_of, spec_classes
from normviz.runs import final
from normviz.runtime import configure_torch
from normviz.stacked import StackedMLP, StackShape
from normviz.train import StackedTrainer

LARGER = [  # (spec class name, changes): each a few CPU-seconds, and each stretching a different term
    ("ActivationsSpec", dict(width=256, batch_size=256, steps=200)),
    ("ActivationsSpec", dict(depth=10, steps=300, probe_every=5)),
    ("InitSweepSpec", dict(epochs=3, width=256, scales=8)),
    ("RunningStatsSpec", dict(width=256, steps=200, pop_every=2)),
    ("RunningStatsSpec", dict(dataset="spirals", n_samples=8000, steps=200, pop_every=20)),
    ("InferenceSpec", dict(train_epochs=4, width=128, finetune_steps=200)),
    ("BatchSizeSpec", dict(epochs=2, width=128, sizes=(8, 64, 256))),
    ("ZooSpec", dict(model="mlp", steps=600, seeds=3)),
    ("CostSpec", dict(model="mlp", cost_batch_sizes=(64, 1024))),
    ("SyncBNSpec", dict(workers=16, steps=100, sub_batches=(2, 8, 32))),
    ("RNNSpec", dict(steps=300, batch_size=128)),
]
TOLERANCE = 3.0


def cpu_seconds(spec) -> float:
    run = run_of(type(spec))
    start = time.process_time()
    final(run(spec))
    return time.process_time() - start


def measure(quick: bool = False) -> Iterator[tuple[object, float]]:
    configure_torch()
    by_name = {cls.__name__: cls for cls in spec_classes().values()}
    cpu_seconds(by_name["ActivationsSpec"](steps=20))  # first-run costs (imports, data, kernels) are not a run's
    specs = [cls() for cls in by_name.values()]
    if not quick:
        specs += [by_name[name](**changes) for name, changes in LARGER]
    for spec in specs:
        yield spec, cpu_seconds(spec)


STEP_SHAPES = [(2, 64, 16, 5), (2, 64, 100, 1), (2, 64, 100, 5), (2, 64, 100, 10), (2, 1024, 512, 5), (32, 100, 100, 5)]


def step_seconds(k: int, batch: int, width: int, depth: int, steps: int = 10) -> float:
    """CPU seconds of one StackedTrainer step of k stacked MLPs (64 inputs, 10 classes), best of 3."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(4096, 64, generator=gen), torch.randint(0, 10, (4096,), generator=gen)
    model = StackedMLP(StackShape(64, 10, depth, width), [0.1] * k, n_bn=max(k // 2, 1), generator=gen)
    trainer = StackedTrainer(model, x, y, optimizer="sgd", lr=0.01, batch_size=batch, generator=gen)
    trainer.step()
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for _ in range(steps):
            trainer.step()
        best = min(best, (time.process_time() - start) / steps)
    return best


def step_rows() -> Iterator[Row]:
    """Where cost.T_MAC and cost.T_OP come from: a step's time against the model's."""
    configure_torch()
    for k, batch, width, depth in STEP_SHAPES:
        seconds = step_seconds(k, batch, width, depth)
        model = cost.training(1, batch, k, cost.mlp_macs(64, width, depth, 10), depth).seconds()
        yield Row(
            f"cost: one training step, K={k} B={batch} width={width} depth={depth}",
            f"{seconds * 1e3:.2f} ms CPU",
            f"T_MAC/T_OP model {model * 1e3:.2f} ms",
            f"{model / seconds:.2f}x",
        )


def rows(quick: bool = False) -> Iterator[Row]:
    yield from step_rows()
    for spec, seconds in measure(quick):
        est = cost.estimate(spec)
        changes = {k: v for k, v in spec.to_dict().items() if v != type(spec)().to_dict()[k]}
        ratio = est / seconds if seconds > 0.05 else float("nan")
        yield Row(
            f"cost {type(spec).__name__} {changes or 'default'}",
            f"{seconds:.2f} CPU-s",
            f"estimate {est:.2f} s (raw {cost.raw_seconds(spec):.2f})",
            f"{ratio:.2f}x",
            f"within {TOLERANCE:g}x",
            None if seconds <= 0.05 else 1 / TOLERANCE <= ratio <= TOLERANCE,
        )


def run(quick: bool = False) -> list[Row]:
    return list(rows(quick))


if __name__ == "__main__":
    for row in rows(quick="--quick" in sys.argv):
        print(" | ".join(str(v) for v in (row.name, row.value, row.baseline, row.ratio, row.met)), flush=True)
