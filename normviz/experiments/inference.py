"""Train vs inference: a BN MLP and a small BN CNN trained once, then used the way production uses them.

Train mode vs eval mode at batch sizes 1..256, batch size 1 (BatchNorm1d refuses it, BatchNorm2d normalises
one image with its own statistics), the "forgot model.eval()" story, batch-mates, and fine-tuning with BN
frozen by `requires_grad=False` (which does not freeze the running statistics) or by `.eval()` (which does).
Every train-mode evaluation restores the running statistics afterwards, so eval mode always uses the ones
training produced.

    python -m normviz train_vs_inference --part inference --seed 0 --json out.json
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from normviz.config import SpecError, param
from normviz.data import load_checked
from normviz.experiments.batch_size import REF_BATCH, BatchSizeSpec, NetSpec, batched_accuracy
from normviz.layers import BatchNorm
from normviz.models import MLP, SmallCNN
from normviz.train import BatchSampler

SIZES = tuple(2**i for i in range(9))  # 1, 2, 4, ..., 256
MATE_KINDS = ("same class", "mixed", "other class")
FINETUNE_CASES = ("requires_grad=False", ".eval() on BN")
CAMERA_GAIN, CAMERA_OFFSET = 0.5, 1.0  # the fine-tuning data's "new camera", in standardised pixel units
N_EXAMPLES = 20  # test images shown one by one in the CNN's batch-size-1 chart
FINETUNE_EVAL_EVERY = 5
FINETUNE_LR_FACTOR = 0.1  # fine-tuning uses a tenth of the training learning rate, as usual


@dataclass(frozen=True)
class InferenceSpec(NetSpec):
    """The BN networks (an MLP and a small CNN) and what is done with them after training."""

    train_epochs: int = param(10, "epochs the BN MLP and CNN are trained for", lo=1, hi=100, label="Epochs (BN nets)")
    train_batch: int = param(64, "batch size the BN MLP and CNN are trained with", lo=2, hi=512, log=True)
    sgd_momentum: float = param(
        0.9,
        "SGD momentum of the BN MLP and CNN (training and fine-tuning)",
        lo=0.0,
        hi=0.99,
        label="SGD momentum (BN nets)",
    )
    image: int = param(
        0,
        "the test image whose batch-mates change (index into the test set; wraps around)",
        lo=0,
        hi=999,
        label="Test image (batch-mates)",
    )
    finetune_steps: int = param(60, "fine-tuning steps on the new-camera data", lo=1, hi=2000)


@dataclass
class AccuracyTable:
    """Test accuracy with the test set fed in batches of each size (NaN where train mode refuses the batch)."""

    sizes: np.ndarray  # (S,)
    eval_acc: np.ndarray  # (S,) eval mode: running statistics
    train_acc: np.ndarray  # (S,) train mode: each batch's own statistics
    error: str = ""  # what train mode said at a refused batch size


@dataclass
class Story:
    """The detector trained at a batch of `train_batch`, deployed frame by frame."""

    eval_correct: np.ndarray  # (F,) bool, with model.eval()
    forgot_correct: np.ndarray  # (F,) bool, left in train mode: each frame normalised by its own statistics
    eval_after_forgot: float  # accuracy with .eval() after those frames ran in train mode (running stats drifted)
    mlp_error: str  # what the MLP's BatchNorm1d said at the first frame in train mode


@dataclass
class BatchMates:
    """One test image's class probabilities in batches with different batch-mates."""

    index: int
    label: int
    other_class: int  # the class of the "other class" mates: the image's runner-up class in eval mode
    pixels: np.ndarray  # (H, W) the image, standardised pixels
    sizes: np.ndarray  # (M,) batch sizes including the image
    train: np.ndarray  # (M, 3, C) train mode, per kind of batch-mates
    eval: np.ndarray  # (M, 3, C) eval mode in the same batches
    alone: np.ndarray  # (C,) eval mode, the image alone

    def spread(self, mode: str) -> float:
        """Largest change of any class probability when only the batch-mates change (same batch size)."""
        p = self.train if mode == "train" else self.eval
        return float(np.max(p.max(axis=1) - p.min(axis=1)))


@dataclass
class FineTune:
    """Fine-tuning on new-camera data with BN's gamma/beta frozen, in two ways (FINETUNE_CASES)."""

    steps: np.ndarray  # (T+1,)
    mean_drift: np.ndarray  # (T+1, 2) mean |running mean - pretrained| / pretrained std, over channels and layers
    var_drift: np.ndarray  # (T+1, 2) mean |ln(running var / pretrained)|
    eval_steps: np.ndarray  # (E,)
    acc: np.ndarray  # (E, 2 cases, 2 cameras: old, new) test accuracy in eval mode
    gamma_change: np.ndarray  # (2,) largest change of any BN gamma or beta (0: they were frozen)


NETWORKS = ("MLP", "CNN")  # trained in this order


@dataclass
class InferenceResult:
    spec: InferenceSpec
    models = NETWORKS
    progress: float = 0.0
    done: bool = False
    bn1d_error: str = ""  # torch.nn.BatchNorm1d's own words for a batch of one in train mode
    diverged_at: list = field(default_factory=lambda: [None] * len(NETWORKS))  # per network: step or None
    mlp: AccuracyTable | None = None
    cnn: AccuracyTable | None = None
    cnn_examples: dict | None = None  # label (N,), p_eval (N,), p_alone (N,): probability of the true class
    story: Story | None = None
    mates: BatchMates | None = None
    finetune: FineTune | None = None

    def summary(self) -> dict:
        """The JSON the CLI writes."""
        mlp = self.mlp
        return {
            "eval_acc_by_batch": {str(b): float(a) for b, a in zip(mlp.sizes, mlp.eval_acc)},
            "train_mode_acc_by_batch": {str(b): float(a) for b, a in zip(mlp.sizes, mlp.train_acc) if b > 1},
            "batch_size_1_train_error": self.bn1d_error,
            "batchmates": {
                "eval_max_abs_diff": self.mates.spread("eval"),
                "train_max_abs_diff": self.mates.spread("train"),
            },
        }


def torch_bn1d_error(width: int) -> str:
    """What torch.nn.BatchNorm1d says when asked to train on one sample."""
    try:
        nn.BatchNorm1d(width).train()(torch.randn(1, width))
    except ValueError as exc:
        return str(exc)
    return ""


@contextmanager
def batch_statistics(model: nn.Module):
    """Train-mode forward passes (BN normalises with each batch's statistics) that leave the running
    statistics exactly as they were, so eval mode afterwards still uses the ones training produced."""
    saved = [(buf, buf.clone()) for buf in model.buffers()]
    model.train()
    try:
        with torch.no_grad():
            yield model
    finally:
        with torch.no_grad():
            for buf, value in saved:
                buf.copy_(value)
        model.eval()


def train_net(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch: int,
    steps: int,
    lr: float,
    sgd_momentum: float,
    generator: torch.Generator,
) -> int | None:
    """SGD on shuffled batches; returns the step where the loss became non-finite, or None."""
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=sgd_momentum)
    sampler = BatchSampler(len(x), batch, generator)
    for step in range(1, steps + 1):
        idx = sampler.next()
        loss = F.cross_entropy(model(x[idx]), y[idx])
        if not torch.isfinite(loss):
            return step
        opt.zero_grad()
        loss.backward()
        opt.step()
    return None


def accuracy_table(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int, eval_per_size: bool = True
) -> AccuracyTable:
    """Eval- and train-mode accuracy for every size in SIZES, on the same random partitions. Without
    `eval_per_size`, eval mode is measured once on the whole test set (it treats every sample on its own)."""
    eval_acc, train_acc, error = [], [], ""
    model.eval()
    for b in SIZES:
        with torch.no_grad():
            eval_acc.append(
                float(
                    batched_accuracy(model, x, y, b if eval_per_size else len(x), torch.Generator().manual_seed(seed))
                )
            )
        with batch_statistics(model):
            try:
                train_acc.append(float(batched_accuracy(model, x, y, b, torch.Generator().manual_seed(seed))))
            except ValueError as exc:
                train_acc.append(np.nan)
                error = error or str(exc)
    return AccuracyTable(np.array(SIZES), np.array(eval_acc), np.array(train_acc), error)


@torch.no_grad()
def cnn_examples(cnn: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Probability of the true class for a few test images: eval mode vs alone in train mode (BN2d uses the
    image's own per-channel statistics over its pixels)."""
    x, y = x[:N_EXAMPLES], y[:N_EXAMPLES]
    cnn.eval()
    p_eval = cnn(x).softmax(-1)[torch.arange(len(y)), y]
    with batch_statistics(cnn):
        p_alone = torch.stack([cnn(x[i : i + 1]).softmax(-1)[0, y[i]] for i in range(len(y))])
    return {"label": y.numpy(), "p_eval": p_eval.numpy(), "p_alone": p_alone.numpy()}


@torch.no_grad()
def story(cnn: nn.Module, mlp: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Story:
    """Frame by frame with and without model.eval(); the forgetful copy keeps updating its running stats."""
    deployed = copy.deepcopy(cnn).eval()
    eval_correct = deployed(x).argmax(-1) == y  # eval mode treats each frame on its own: one pass is the same
    forgot = copy.deepcopy(cnn).train()
    forgot_correct = torch.stack([forgot(x[i : i + 1]).argmax(-1)[0] == y[i] for i in range(len(x))])
    forgot.eval()
    after = (forgot(x).argmax(-1) == y).float().mean().item()
    try:
        copy.deepcopy(mlp).train()(x[:1])
        mlp_error = ""
    except ValueError as exc:
        mlp_error = str(exc)
    return Story(eval_correct.numpy(), forgot_correct.numpy(), after, mlp_error)


@torch.no_grad()
def batch_mates(mlp: nn.Module, data, index: int, seed: int) -> BatchMates:
    x_test, y_test = data.x_test, data.y_test
    i = index % len(x_test)
    image, label = x_test[i : i + 1], int(y_test[i])
    keep = torch.ones(len(x_test), dtype=torch.bool)
    keep[i] = False
    pool_x, pool_y = torch.cat([data.x_train, x_test[keep]]), torch.cat([data.y_train, y_test[keep]])
    mlp.eval()
    alone = mlp(image).softmax(-1)[0]
    ranked = alone.argsort(descending=True).tolist()
    other = next(c for c in ranked if c != label)
    gen = torch.Generator().manual_seed(seed)
    n_mates = max(SIZES) - 1

    def draw(candidates: torch.Tensor) -> torch.Tensor:  # a fixed order; smaller batches take its start
        if len(candidates) == 0:  # a tiny data set without that class: mixed mates instead
            candidates = torch.arange(len(pool_y))
        order = candidates[torch.randperm(len(candidates), generator=gen)]
        return order.repeat(-(-n_mates // len(order)))[:n_mates]  # repeats only if the class is too small

    mates = [
        draw(torch.nonzero(pool_y == label).flatten()),
        draw(torch.arange(len(pool_y))),
        draw(torch.nonzero(pool_y == other).flatten()),
    ]
    sizes = [b for b in SIZES if b > 1]
    train, evals = [], []
    for b in sizes:
        batches = [torch.cat([image, pool_x[m[: b - 1]]]) for m in mates]
        evals.append(torch.stack([mlp(xb).softmax(-1)[0] for xb in batches]))
        with batch_statistics(mlp):
            train.append(torch.stack([mlp(xb).softmax(-1)[0] for xb in batches]))
    hw = data.image_shape or (1, x_test.shape[1])
    return BatchMates(
        i,
        label,
        other,
        image.reshape(hw).numpy(),
        np.array(sizes),
        torch.stack(train).numpy(),
        torch.stack(evals).numpy(),
        alone.numpy(),
    )


def new_camera(x: torch.Tensor) -> torch.Tensor:
    return CAMERA_GAIN * x + CAMERA_OFFSET


def _finetune_modes(net: nn.Module, case: str):
    net.train()
    if case == FINETUNE_CASES[1]:
        for m in net.modules():
            if isinstance(m, BatchNorm):
                m.eval()


def _drift(bns: list[BatchNorm], start: list[tuple]) -> tuple[float, float]:
    """How far the running stats moved: mean |mean - mean0| / std0 and mean |ln(var / var0)| over channels
    and layers."""
    shift = [((m.stats.mean[0] - mu) / torch.sqrt(var + m.eps)).abs().mean() for m, (mu, var, *_) in zip(bns, start)]
    ratio = [torch.log(m.stats.var[0] / var).abs().mean() for m, (_, var, *_) in zip(bns, start)]
    return torch.stack(shift).mean().item(), torch.stack(ratio).mean().item()


@torch.no_grad()
def _eval_accuracies(net: nn.Module, case: str, tests: tuple, y: torch.Tensor) -> list[float]:
    net.eval()
    out = [(net(x).argmax(-1) == y).float().mean().item() for x in tests]
    _finetune_modes(net, case)
    return out


def _finetune_case(mlp: nn.Module, data, spec: InferenceSpec, case: str, eval_steps: list[int]) -> Iterator:
    """One fine-tuning run; yields None every 20 steps, then (drifts (T+1, 2), accuracies (E, 2), gamma change)."""
    net = copy.deepcopy(mlp)
    bns = [m for m in net.modules() if isinstance(m, BatchNorm)]
    for m in bns:
        m.weight.requires_grad_(False)
        m.bias.requires_grad_(False)
    start = [(m.stats.mean[0].clone(), m.stats.var[0].clone(), m.weight.clone(), m.bias.clone()) for m in bns]
    x_new, tests = new_camera(data.x_train), (data.x_test, new_camera(data.x_test))
    gen = torch.Generator().manual_seed(spec.seed + 1)
    batch = min(spec.train_batch, len(x_new))
    lr = FINETUNE_LR_FACTOR * spec.lr * batch / REF_BATCH
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=lr, momentum=spec.sgd_momentum)
    sampler = BatchSampler(len(x_new), batch, gen)
    _finetune_modes(net, case)
    drifts, accs = [_drift(bns, start)], [_eval_accuracies(net, case, tests, data.y_test)]
    for step in range(1, spec.finetune_steps + 1):
        idx = sampler.next()
        loss = F.cross_entropy(net(x_new[idx]), data.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        drifts.append(_drift(bns, start))
        if step in eval_steps:
            accs.append(_eval_accuracies(net, case, tests, data.y_test))
        if step % 20 == 0:
            yield None
    gamma_change = max(
        max((m.weight - w).abs().max().item(), (m.bias - b).abs().max().item()) for m, (_, _, w, b) in zip(bns, start)
    )
    yield np.array(drifts), np.array(accs), gamma_change


def finetune(mlp: nn.Module, data, spec: InferenceSpec) -> Iterator[FineTune | None]:
    """Fine-tune copies of the trained MLP on new-camera data, BN frozen by requires_grad=False alone or by
    .eval() on its modules too. Yields None while busy and the FineTune at the end."""
    steps = spec.finetune_steps
    eval_steps = [s for s in range(steps + 1) if s % FINETUNE_EVAL_EVERY == 0 or s == steps]
    parts = []
    for case in FINETUNE_CASES:
        for part in _finetune_case(mlp, data, spec, case, eval_steps):
            if part is None:
                yield None
            else:
                parts.append(part)
    drifts = np.stack([p[0] for p in parts], axis=1)  # (T+1, 2 cases, 2 measures)
    yield FineTune(
        np.arange(steps + 1),
        drifts[..., 0],
        drifts[..., 1],
        np.array(eval_steps),
        np.stack([p[1] for p in parts], axis=1),
        np.array([p[2] for p in parts]),
    )


def run(spec: InferenceSpec) -> Iterator[InferenceResult]:
    """Train the MLP and the CNN once, then the inference experiments; yields a result after each part."""
    data = load_checked(spec)
    if data.image_shape is None:
        raise SpecError("dataset: the small CNN needs square images (the 8x8 digits or 28x28 MNIST)")
    x, y = data.x_train, data.y_train
    batch = min(spec.train_batch, len(x))
    steps, lr = max(1, spec.train_epochs * len(x) // batch), spec.lr * batch / REF_BATCH
    result = InferenceResult(spec, bn1d_error=torch_bn1d_error(spec.width))
    gen = torch.Generator().manual_seed(spec.seed)
    mlp = MLP(
        data.n_features,
        data.n_classes,
        spec.depth,
        spec.width,
        spec.activation,
        norm="batch",
        norm_place=spec.norm_place,
        init=spec.init,
        init_std=spec.init_std,
        generator=gen,
        momenta=(spec.momentum,),
    )
    cnn = SmallCNN(data.n_classes, norm="batch", image_hw=data.image_shape, generator=gen, momenta=(spec.momentum,))
    for k, (net, share) in enumerate(((mlp, 0.15), (cnn, 0.45))):
        net.train()
        result.diverged_at[k] = train_net(net, x, y, batch, steps, lr, spec.sgd_momentum, gen)
        net.eval()
        yield dataclasses.replace(result, progress=share)
    result.mlp = accuracy_table(mlp, data.x_test, data.y_test, spec.seed)
    result.cnn = accuracy_table(cnn, data.x_test, data.y_test, spec.seed, eval_per_size=False)
    result.cnn_examples = cnn_examples(cnn, data.x_test, data.y_test)
    yield dataclasses.replace(result, progress=0.6)
    result.story = story(cnn, mlp, data.x_test, data.y_test)
    result.mates = batch_mates(mlp, data, spec.image, spec.seed)
    yield dataclasses.replace(result, progress=0.75)
    for part in finetune(mlp, data, spec):
        result.finetune = part
    yield dataclasses.replace(result, progress=1.0, done=True)


@dataclass(frozen=True)
class TrainVsInferenceSpec(BatchSizeSpec, InferenceSpec):
    """The Train vs inference page: both experiments' settings and the batch size the page looks at."""

    batch_size: int = param(
        4,
        "batch size looked at throughout the page: train-mode inference, batch-mates and the marked point of the sweep",
        lo=1,
        hi=256,
        log=True,
        label="Batch size B",
    )
