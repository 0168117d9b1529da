"""What tracking 6 momenta costs against tracking 1, in one run: one network, one set of buffers per momentum.

    python -m bench.bench_momenta [--repeats 5]      (also part of `python -m bench`)

Prints the CPU time (one thread, best of the repeats, the two settings interleaved) of
(1) the training steps alone, where the running-stat rows are the only difference, and
(2) the whole Running-statistics run (population statistics and eval accuracy for every row every k steps).
Target: 6 momenta <= 1.15x the time of 1.
"""

from __future__ import annotations

import argparse
import time

import torch

from bench.common import Row
from normviz.data import load_checked
from normviz.experiments.running_stats import RunningStatsSpec, build_model
from normviz.experiments.running_stats import run as run_experiment
from normviz.runs import final
from normviz.runtime import configure_torch
from normviz.stacked import make_optimizer, stacked_cross_entropy
from normviz.train import BatchSampler

SIX = (0.001, 0.003, 0.01, 0.03, 0.1, 0.5)
ONE = (0.1,)
TARGET = 1.15


def train_steps(spec: RunningStatsSpec) -> float:
    """CPU seconds of spec.steps training steps (forward, running-stat update of every row, backward, SGD)."""
    data = load_checked(spec)
    gen = torch.Generator().manual_seed(spec.seed)
    model = build_model(spec, data.n_features, data.n_classes, gen)
    opt = make_optimizer(model.parameters(), "sgd", spec.lr)
    sampler = BatchSampler(len(data.x_train), spec.batch_size, gen)
    start = time.process_time()
    for _ in range(spec.steps):
        idx = sampler.next()
        loss = stacked_cross_entropy(model(data.x_train[idx], "train"), data.y_train[idx]).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.process_time() - start


def whole_run(spec: RunningStatsSpec) -> float:
    start = time.process_time()
    final(run_experiment(spec))
    return time.process_time() - start


def best_of(fn, specs: dict[str, RunningStatsSpec], repeats: int) -> dict[str, float]:
    times = {name: [] for name in specs}
    for _ in range(repeats):
        for name, spec in specs.items():  # interleaved, so load changes hit both alike
            times[name].append(fn(spec))
    return {name: min(t) for name, t in times.items()}


def measure(repeats: int, steps: int | None = None) -> list[tuple[str, float, float]]:
    """(what, CPU seconds with 1 momentum, with 6) for the training steps alone and for the whole run."""
    base = RunningStatsSpec(cma=False) if steps is None else RunningStatsSpec(cma=False, steps=steps)
    specs = {"1 momentum": base.replace(momenta=ONE), "6 momenta": base.replace(momenta=SIX)}
    final(run_experiment(base.replace(steps=20)))  # warm up: data cache, allocator
    out = []
    for title, fn in (("training steps (tracking only)", train_steps), ("whole run (page/CLI)", whole_run)):
        t = best_of(fn, specs, repeats)
        out.append((title, t["1 momentum"], t["6 momenta"]))
    return out


def run(quick: bool = False) -> list[Row]:
    """Rows for `python -m bench`."""
    rows = []
    for title, one, six in measure(3 if quick else 5, 150 if quick else None):
        ratio = six / one
        rows.append(
            Row(
                f"(2) 6 momenta vs 1: {title}",
                f"{six:.2f} s CPU",
                f"{one:.2f} s CPU",
                f"{ratio:.2f}x",
                f"<= {TARGET:g}x",
                ratio <= TARGET,
                "Running-statistics view, one network, K=1",
            )
        )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    configure_torch()
    base = RunningStatsSpec(cma=False)
    print(
        f"defaults: {base.depth} BN layers x {base.width} channels, batch {base.batch_size}, {base.steps} steps, "
        f"population every {base.pop_every} steps; CPU seconds, best of {args.repeats}, one thread"
    )
    for title, one, six in measure(args.repeats):
        ratio = six / one
        verdict = "ok" if ratio <= TARGET else f"ABOVE the {TARGET:g}x target"
        print(f"{title:32s} 1: {one:.3f}s  6: {six:.3f}s  ratio {ratio:.3f}x  ({verdict})")


if __name__ == "__main__":
    main()
