"""The step loop for a stack of models; what is observed lives in probes.py, not here."""

from __future__ import annotations

import torch

from normviz.runtime import check_cancelled
from normviz.stacked import StackedMLP, make_optimizer, stacked_cross_entropy


class BatchSampler:
    """Shuffled epochs of fixed-size batches (the short last batch is dropped: BN needs >= 2)."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator):
        if batch_size > n:
            raise ValueError(f"batch_size {batch_size} is larger than the {n} training samples")
        self.n, self.batch_size, self.generator = n, batch_size, generator
        self.epoch, self._order, self._pos = 0, torch.randperm(n, generator=generator), 0

    @property
    def batches_per_epoch(self) -> int:
        return self.n // self.batch_size

    def next(self) -> torch.Tensor:
        check_cancelled()  # every training loop draws its batches here: a run nobody follows stops (service.py)
        if self._pos + self.batch_size > self.n:
            self.epoch += 1
            self._order, self._pos = torch.randperm(self.n, generator=self.generator), 0
        idx = self._order[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return idx


class StackedTrainer:
    """Trains K stacked models on the same batches; a model whose loss turns non-finite is stopped."""

    def __init__(
        self,
        model: StackedMLP,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        optimizer: str,
        lr: float,
        batch_size: int,
        generator: torch.Generator,
        sgd_momentum: float = 0.0,
    ):
        self.model, self.x, self.y = model, x, y
        self.opt = make_optimizer(model.parameters(), optimizer, lr, sgd_momentum)
        self.sampler = BatchSampler(len(x), batch_size, generator)
        self.step_count = 0
        self.diverged_at: list[int | None] = [None] * model.k

    @property
    def all_diverged(self) -> bool:
        return all(d is not None for d in self.diverged_at)

    def step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One step for every model; returns per-model loss and train-mode accuracy on the batch."""
        self.step_count += 1
        idx = self.sampler.next()
        xb, yb = self.x[idx], self.y[idx]
        logits = self.model(xb, "train")  # (K, B, C)
        losses = stacked_cross_entropy(logits, yb)  # (K,)
        if all(d is None for d in self.diverged_at) and bool(torch.isfinite(losses.detach()).all()):
            keep = None  # the common case: every model alive and finite
        else:
            keep = mark_diverged(losses, self.diverged_at, self.step_count)
        if keep is None or keep.any():
            self.opt.zero_grad()
            (losses if keep is None else losses[keep]).sum().backward()  # the sum keeps each gradient its own
            self.opt.step()
        acc = (logits.detach().argmax(-1) == yb).float().mean(1)
        return losses.detach(), acc


def mark_diverged(losses: torch.Tensor, diverged_at: list, step: int, bad: torch.Tensor | None = None) -> torch.Tensor:
    """Record `step` for each model whose loss goes bad now (not finite, or `bad`) in `diverged_at` (per model:
    the step, or None); returns (K,) bool: the models still alive, whose losses may be backpropagated."""
    alive = torch.tensor([d is None for d in diverged_at])
    bad = ~torch.isfinite(losses.detach()) if bad is None else bad
    for i in torch.nonzero(alive & bad).flatten().tolist():
        diverged_at[i] = step
    return alive & ~bad


@torch.no_grad()
def accuracy(
    model: StackedMLP, x: torch.Tensor, y: torch.Tensor, mode: str = "eval", eval_row: int = 0, chunk: int | None = None
) -> torch.Tensor:
    """Per-model accuracy (K,) in eval mode (running stats) or 'probe' mode (batch statistics).

    In 'probe' mode each chunk of (by default) 2,048 samples is one batch. In eval mode the chunk only
    sets the speed: about 8,192 rows across the K models keeps (32, 256, 100) activations in the cache,
    and the init sweep's per-epoch accuracy took half the time of 2,048-sample chunks (bench/).
    """
    chunk = chunk or (2048 if mode == "probe" else max(128, 8192 // model.k))
    correct = torch.zeros(model.k)
    for start in range(0, len(x), chunk):
        logits = model(x[start : start + chunk], mode, eval_row=eval_row)
        correct += (logits.argmax(-1) == y[start : start + chunk]).float().sum(1)
    return correct / len(x)
