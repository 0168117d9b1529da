"""(3) The default Activations run with full telemetry (per-layer histograms and statistics on a fixed
probe batch every `probe_every` steps, train/test accuracy, loss curves) against the bare training loop
of the same two networks; (4) steps per second of that run.

    python -m bench --only telemetry
"""

from __future__ import annotations

import torch

from bench.common import Row, interleaved
from normviz.data import load_checked
from normviz.experiments import activations
from normviz.probes import LayerProbe
from normviz.runs import final
from normviz.stacked import StackedMLP, StackShape
from normviz.train import StackedTrainer

TARGET = 1.25


def bare_loop(spec: activations.ActivationsSpec) -> None:
    """What activations.run does minus everything it observes: the same data, models and steps."""
    data = load_checked(spec)
    gen = torch.Generator().manual_seed(spec.seed)
    shape = StackShape(data.n_features, data.n_classes, spec.depth, spec.width, spec.activation, spec.norm_place)
    model = StackedMLP(shape, [spec.init_std] * 2, n_bn=1, weight_init=spec.init, generator=gen)
    trainer = StackedTrainer(
        model,
        data.x_train,
        data.y_train,
        optimizer=spec.optimizer,
        lr=spec.lr,
        batch_size=min(spec.batch_size, len(data.x_train)),
        generator=gen,
        sgd_momentum=spec.sgd_momentum,
    )
    for _ in range(spec.steps):
        trainer.step()


def probe_ms(spec: activations.ActivationsSpec, repeats: int = 20) -> float:
    """CPU time of one probe (histograms and statistics of all layers of both networks), in ms."""
    data = load_checked(spec)
    shape = StackShape(data.n_features, data.n_classes, spec.depth, spec.width, spec.activation, spec.norm_place)
    model = StackedMLP(
        shape, [spec.init_std] * 2, n_bn=1, weight_init=spec.init, generator=torch.Generator().manual_seed(0)
    )
    probe = LayerProbe(model, data.x_train[: activations.PROBE_BATCH])
    probe.record()
    return 1e3 * interleaved({"probe": probe.record}, repeats)["probe"].cpu


def run(quick: bool = False) -> list[Row]:
    spec = activations.ActivationsSpec()
    final(activations.run(spec.replace(steps=20)))  # warm-up
    times = interleaved(
        {"full": lambda: final(activations.run(spec)), "bare": lambda: bare_loop(spec)}, repeats=2 if quick else 5
    )
    full, bare = times["full"], times["bare"]
    ratio = full.wall / bare.wall
    return [
        Row(
            f"(3) Activations, {spec.steps} steps: full telemetry vs bare loop",
            f"{full.wall:.2f} s",
            f"{bare.wall:.2f} s",
            f"{ratio:.2f}x",
            f"<= {TARGET:g}x",
            ratio <= TARGET,
            f"CPU time {full.cpu / bare.cpu:.2f}x; probe every {spec.probe_every} steps ({probe_ms(spec):.1f} ms "
            "each) + train/test accuracy",
        ),
        Row(
            "(4) Activations default, with telemetry",
            f"{spec.steps / full.wall:.0f} steps/s",
            f"{spec.steps / bare.wall:.0f} steps/s bare",
            "",
            "",
            None,
            f"{full.wall:.2f} s for the run; K=2 (BN, no BN) 64-100x5-10, batch 64",
        ),
    ]
