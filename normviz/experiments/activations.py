"""Activations: two MLPs with identical initial weights, one with BN and one without, trained on the
same batches while every layer's distributions are recorded.

    python -m normviz activations --activation sigmoid --init-std 1 --json out.json
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from normviz.config import DataSpec, ModelSpec, TrainSpec
from normviz.data import load_checked
from normviz.probes import GRAD_EDGES, LayerProbe, record_every
from normviz.runs import Throttle
from normviz.stacked import StackedMLP, StackShape
from normviz.train import StackedTrainer, accuracy

MODELS = ("BN", "no BN")  # stack order: BatchNorm models come first
PROBE_BATCH = 256
TRAIN_EVAL_SAMPLES = 1000


@dataclass(frozen=True)
class ActivationsSpec(TrainSpec, ModelSpec, DataSpec):
    """Everything the Activations view trains with."""


@dataclass
class ActivationsResult:
    spec: ActivationsSpec
    steps_done: int = 0
    done: bool = False
    diverged_at: list = field(default_factory=lambda: [None] * len(MODELS))  # per model, step or None
    loss: np.ndarray = field(default_factory=lambda: np.zeros((0, len(MODELS)), np.float32))  # (S, K)
    batch_acc: np.ndarray = field(default_factory=lambda: np.zeros((0, len(MODELS)), np.float32))  # train mode
    probe_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (T,)
    snapshots: dict = field(default_factory=dict)  # name -> (T, K, L[, nb]) float32
    edges: dict = field(default_factory=dict)  # quantity -> [per layer (nb+1,)]; "grad" -> (nb+1,)

    @property
    def progress(self) -> float:
        return self.steps_done / self.spec.steps

    @property
    def models(self) -> tuple[str, ...]:
        return MODELS

    def summary(self) -> dict:
        """The JSON the CLI writes: final per-layer stats and accuracies of both networks."""
        last = {
            name: a[-1].tolist()
            for name, a in self.snapshots.items()
            if name in ("mean", "std", "saturated", "dead", "train_acc", "test_acc")
        }
        out = {
            "spec": self.spec.to_dict(),
            "models": list(MODELS),
            "steps_done": self.steps_done,
            "diverged_at": dict(zip(MODELS, self.diverged_at)),
            "probe_steps": self.probe_steps.tolist(),
        }
        for i, name in enumerate(MODELS):
            out[name] = {
                "final_train_acc": last["train_acc"][i],
                "final_test_acc": last["test_acc"][i],
                "final_loss": float(self.loss[-1, i]) if len(self.loss) else None,
                "layers": {stat: last[stat][i] for stat in ("mean", "std", "saturated", "dead")},
            }
        return out


def run(spec: ActivationsSpec) -> Iterator[ActivationsResult]:
    """Train the pair; yields growing partial results (about twice a second) and the final one."""
    data = load_checked(spec)
    gen = torch.Generator().manual_seed(spec.seed)
    shape = StackShape(data.n_features, data.n_classes, spec.depth, spec.width, spec.activation, spec.norm_place)
    model = StackedMLP(shape, [spec.init_std] * len(MODELS), n_bn=1, weight_init=spec.init, generator=gen)
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
    probe = LayerProbe(model, data.x_train[:PROBE_BATCH])
    x_eval, y_eval = data.x_train[:TRAIN_EVAL_SAMPLES], data.y_train[:TRAIN_EVAL_SAMPLES]
    losses, batch_accs, probe_steps, snaps = [], [], [], []
    throttle = Throttle()
    every = record_every(spec.probe_every, spec.steps)

    def snapshot(done: bool) -> ActivationsResult:
        stacked = {name: np.stack([s[name] for s in snaps]).astype(np.float32) for name in snaps[0]}
        edges = {q: [e.numpy() for e in es] for q, es in probe.edges.items()} | {"grad": GRAD_EDGES.numpy()}
        return ActivationsResult(
            spec,
            trainer.step_count,
            done,
            list(trainer.diverged_at),
            np.array(losses, np.float32).reshape(-1, len(MODELS)),
            np.array(batch_accs, np.float32).reshape(-1, len(MODELS)),
            np.array(probe_steps),
            stacked,
            edges,
        )

    def record():
        snap = {k: v.numpy() for k, v in probe.record().items()}
        snap["train_acc"] = accuracy(model, x_eval, y_eval).numpy()
        snap["test_acc"] = accuracy(model, data.x_test, data.y_test).numpy()
        for i, d in enumerate(trainer.diverged_at):  # a diverged model has no meaningful numbers left
            if d is not None:
                for v in snap.values():
                    v[i] = np.nan
        snaps.append(snap)
        probe_steps.append(trainer.step_count)

    record()
    yield snapshot(False)
    for step in range(1, spec.steps + 1):
        loss, acc = trainer.step()
        losses.append(loss.numpy())
        batch_accs.append(acc.numpy())
        if step % every == 0 or step == spec.steps or trainer.all_diverged:
            record()
        if trainer.all_diverged:
            break
        if throttle.due():
            yield snapshot(False)
    yield snapshot(True)
