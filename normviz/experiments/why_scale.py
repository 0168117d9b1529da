"""Scale invariance and the effective learning rate (van Laarhoven 2017; Zhang et al. 2019, "Three Mechanisms of
Weight Decay Regularization"). A Linear layer followed by BN computes the same function for w and c·w, so the
gradient is orthogonal to w and shrinks as 1/‖w‖: a step changes w's direction by about lr·‖g‖/‖w‖, i.e. at the
effective rate lr/‖w‖². Weight decay shrinks ‖w‖ and so raises that rate; it does not shrink the function.

Three BN networks from the same weights on the same batches: no weight decay; weight decay on the hidden
(BN-followed) weights; and no weight decay with each hidden layer's rate set every step to the decayed network's
effective rate. The last computes the decayed network's function without any decay.

    python -m normviz why_bn --view scale --weight-decay 0.02 --json scale.json
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from normviz.config import param
from normviz.experiments.why_common import (
    INIT,
    StackedSGD,
    WhyResult,
    WhySpec,
    backward_alive,
    digits,
    lr_param,
)
from normviz.runs import Throttle
from normviz.stacked import StackedMLP, StackShape, stacked_cross_entropy
from normviz.train import BatchSampler, accuracy

MODELS = ("BN", "BN + weight decay", "BN, rate matched")
DECAYED, MATCHED = 1, 2
CHECK_SAMPLES = 256
TORCH_EPS = 1e-5  # BatchNorm1d's default


@dataclass(frozen=True)
class ScaleSpec(WhySpec):
    """Three BN MLPs: without weight decay, with it, and without it at the decayed one's effective rate."""

    lr: float = lr_param()
    weight_decay: float = param(
        0.05, "weight decay λ on the hidden (BN-followed) weights", lo=0.0, hi=1.0, label="Weight decay λ"
    )
    bn_eps: float = param(
        0.0,
        "BN's ε in the three networks: with 0 scale invariance is exact; with torch's 1e-5 the decayed network's "
        "smaller weights make ε matter, and the matched network drifts from it",
        lo=0.0,
        hi=0.01,
        label="BN's ε",
    )
    scale_c: float = param(
        10.0, "the live check scales one layer's weights by c", lo=1e-3, hi=1e3, log=True, label="Check: scale c"
    )


def scale_check(
    model: StackedMLP, x: torch.Tensor, y: torch.Tensor, c: float, eps: float = 0.0
) -> dict[str, np.ndarray]:
    """Scale each hidden layer's weights and bias by c (one layer at a time), in float64, batch statistics, with
    BN's ε set to `eps` (the identity is exact for ε = 0; ε makes BN(c·h) differ from BN(h) by about ε/2σ²).

    Returns per layer (L,): the largest change of any output (logit) relative to the largest output, and the
    largest |c·∇w L(c·w) - ∇w L(w)| relative to the largest |∇w L(w)|, over all models of the stack."""
    net = copy.deepcopy(model).double()
    net.eps = eps
    x = x.double()

    def outputs_and_grads(layer: int):
        net.zero_grad()
        out = net(x, "probe")
        stacked_cross_entropy(out, y).sum().backward()
        return out.detach(), net.weights[layer].grad.clone()

    out_change, grad_error = [], []
    for layer in range(model.shape.depth):
        out, grad = outputs_and_grads(layer)
        with torch.no_grad():
            net.weights[layer].mul_(c)
            net.biases[layer].mul_(c)
        out_c, grad_c = outputs_and_grads(layer)
        with torch.no_grad():
            net.weights[layer].div_(c)
            net.biases[layer].div_(c)
        out_change.append(float((out_c - out).abs().max() / out.abs().max()))
        grad_error.append(float((c * grad_c - grad).abs().max() / grad.abs().max()))
    return {"output_change": np.array(out_change), "grad_error": np.array(grad_error)}


@dataclass
class ScaleResult(WhyResult):
    spec: ScaleSpec
    steps_done: int = 0
    done: bool = False
    loss: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))  # (S, K)
    weight_norm: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 0), np.float32))  # (S+1, K, L) ‖w‖
    hidden_lr: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 0), np.float32))  # (S, K, L) rate used
    grad_cos: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 0), np.float32))  # (S, K, L) cos(g, w)
    test_acc: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))  # (K,) test set as one batch
    agreement: float = float("nan")  # share of test images where the decayed and the matched net predict alike
    check: dict = field(default_factory=dict)  # scale_check of the final networks
    diverged_at: list = field(default_factory=lambda: [None] * 3)

    MODELS = MODELS

    def effective_lr(self) -> np.ndarray:
        """(S, K, L) the rate each step turned w's direction with: rate / ‖w‖² (before the step)."""
        return self.hidden_lr / np.square(self.weight_norm[: len(self.hidden_lr)])

    def check_table(self) -> list[dict]:
        """The live check, one row per hidden layer."""
        c = self.check
        return [
            {
                "layer": layer + 1,
                "max output change (ε = 0)": float(c["output_change"][layer]),
                "max |c·∇L(cw) − ∇L(w)| (ε = 0)": float(c["grad_error"][layer]),
                f"max output change (ε = {TORCH_EPS:g})": float(c["output_change_with_eps"][layer]),
                f"max |c·∇L(cw) − ∇L(w)| (ε = {TORCH_EPS:g})": float(c["grad_error_with_eps"][layer]),
            }
            for layer in range(len(c.get("output_change", ())))
        ]

    def summary(self) -> dict:
        eff = self.effective_lr()
        return {
            "spec": self.spec.to_dict(),
            "steps_done": self.steps_done,
            "agreement_decayed_vs_matched": self.agreement,
            "scale_check": {k: v.tolist() for k, v in self.check.items()},
            "diverged_at": dict(zip(MODELS, self.diverged_at)),
            **{
                m: {
                    "test_acc": float(self.test_acc[k]),
                    "weight_norm_per_layer": self.weight_norm[:, k].T.tolist(),
                    "effective_lr_per_layer": eff[:, k].T.tolist(),
                    "max_abs_cos_grad_weight": float(np.nanmax(np.abs(self.grad_cos[:, k]))),
                }
                for k, m in enumerate(MODELS)
            },
        }


def hidden_norms(model: StackedMLP) -> torch.Tensor:
    """(K, L) Frobenius norm of each model's hidden-layer weights."""
    return torch.stack([w.detach().flatten(1).norm(dim=1) for w in model.weights[: model.shape.depth]], 1)


def run(spec: ScaleSpec) -> Iterator[ScaleResult]:
    """Train the three; record ‖w‖, the rate and cos(g, w) of every hidden layer at every step."""
    data = digits(spec.seed)
    gen = torch.Generator().manual_seed(spec.seed)
    shape = StackShape(data.n_features, data.n_classes, spec.depth, spec.width)
    model = StackedMLP(shape, [1.0] * 3, n_bn=3, weight_init=INIT, generator=gen, eps=spec.bn_eps)
    opt = StackedSGD(model, torch.full((3,), spec.lr), torch.tensor([0.0, spec.weight_decay, 0.0]))
    sampler = BatchSampler(len(data.x_train), min(spec.batch_size, len(data.x_train)), gen)
    losses, norms, rates, cosines = [], [hidden_norms(model).numpy()], [], []
    diverged_at, throttle = [None] * 3, Throttle()
    shrink = 1 - spec.lr * spec.weight_decay

    def snapshot(step: int, done: bool, check: dict | None = None) -> ScaleResult:
        acc = accuracy(model, data.x_test, data.y_test, "probe", chunk=len(data.x_test)).numpy()
        with torch.no_grad():  # batch statistics: running averages lag behind a changing ‖w‖ differently
            pred = model(data.x_test, "probe").argmax(-1)  # (K, N)
        acc[[d is not None for d in diverged_at]] = np.nan
        return ScaleResult(
            spec,
            step,
            done,
            np.array(losses, np.float32).reshape(-1, 3),
            np.array(norms, np.float32),
            np.array(rates, np.float32).reshape(-1, 3, spec.depth),
            np.array(cosines, np.float32).reshape(-1, 3, spec.depth),
            acc,
            float((pred[DECAYED] == pred[MATCHED]).float().mean()),
            check or {},
            list(diverged_at),
        )

    step = 0
    for step in range(1, spec.steps + 1):
        idx = sampler.next()
        loss = stacked_cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad()
        backward_alive(loss, diverged_at, step)
        norm = hidden_norms(model)  # (K, L) before the step
        hidden_lr = torch.full((3, spec.depth), spec.lr)
        # the matched network turns its weights' direction at the decayed one's effective rate
        hidden_lr[MATCHED] = spec.lr * norm[MATCHED].square() / (shrink * norm[DECAYED].square())
        with torch.no_grad():
            cosines.append(
                torch.stack(
                    [
                        torch.nn.functional.cosine_similarity(w.grad.flatten(1), w.flatten(1), dim=1)
                        for w in model.weights[: spec.depth]
                    ],
                    1,
                ).numpy()
            )
        opt.step(hidden_lr)
        losses.append(loss.detach().numpy())
        rates.append(hidden_lr.numpy())
        norms.append(hidden_norms(model).numpy())
        if all(d is not None for d in diverged_at):
            break
        if throttle.due():
            yield snapshot(step, False)
    x_check, y_check = data.x_train[:CHECK_SAMPLES], data.y_train[:CHECK_SAMPLES]
    check = scale_check(model, x_check, y_check, spec.scale_c)
    with_eps = scale_check(model, x_check, y_check, spec.scale_c, TORCH_EPS)
    check |= {f"{k}_with_eps": v for k, v in with_eps.items()}
    yield snapshot(step, True, check)
