"""The guided tour: a 20-minute BatchNorm lecture as an ordered list of views and their presets.

The home page shows it, the offline report follows its order, and a test checks that every view and
preset named here exists.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stop:
    preset: str  # a key of its view's PRESETS (normviz/lessons/<view>.py)
    ask: str  # what to show or ask the class, one line
    chart: str = ""  # the chart its notice is about (a ui.chart name): presenter mode opens the page there


@dataclass(frozen=True)
class Section:
    title: str
    view: str  # a name of normviz.views: the page, and the lesson module with its PRESETS
    minutes: int
    teaches: str  # what the view teaches, two or three lines
    stops: tuple[Stop, ...]


TOUR = (
    Section(
        "Why normalise: activations layer by layer",
        "activations",
        6,
        "Two 5-layer MLPs start from the same weights and see the same batches; only one has BatchNorm. "
        "The histograms show what every layer passes on, and they move while the networks train.",
        (
            Stop(
                "tiny init, no BN: activations collapse",
                "Point at layer 5 without BN: a spike at 0. Why does "
                "it stay at 10% accuracy? With BN the same weights train.",
                chart="act-hist",
            ),
            Stop(
                "sigmoid, std=1: saturation",
                "Too large instead of too small: the sigmoids sit in their flat ends, where the gradient is almost 0.",
                chart="act-hist",
            ),
            Stop(
                "He init + ReLU",
                "A good init also keeps the scale: BN is one cure, not the only one.",
                chart="act-hist",
            ),
        ),
    ),
    Section(
        "BN makes the init scale matter less",
        "init_sweep",
        2,
        "The experiment of Deep Learning from Scratch (ch. 6): 16 init scales, each trained with and without "
        "BN. It trains 32 networks at once; start it, then talk.",
        (
            Stop(
                "the DLfS 16-scale grid",
                "Count the panels where the dashed (no BN) curve learns, then the solid ones.",
                chart="sweep-grid",
            ),
        ),
    ),
    Section(
        "The equations with live numbers",
        "by_hand",
        3,
        "One BatchNorm1d training step on a small batch, written out: batch mean and variance, x̂, γx̂+β and "
        "the running-statistics update, checked against torch.nn.BatchNorm1d.",
        (
            Stop("a constant feature", "σ² = 0: what stops the division by zero? (ε) And what is y? (β)"),
            Stop("B = 2 gives ±1", "Two samples: x̂ is ±1 whatever the values. What does BN keep? (the order)"),
        ),
    ),
    Section(
        "Running statistics: what eval mode uses",
        "running_stats",
        4,
        "Eval mode normalises with running averages of the batch statistics. Several momenta are tracked in "
        "one training run and compared with the true population statistics.",
        (
            Stop(
                "Are PyTorch 0.1 and Keras 0.99 the same thing?",
                "No: Keras' momentum is 1 − PyTorch's, so Keras 0.99 is PyTorch 0.01.",
                chart="rs-a",
            ),
            Stop("frozen network: only noise", "With lr 0, smaller momentum means less noise.", chart="rs-b"),
            Stop(
                "tiny momentum lags",
                "But when the network learns, a long window describes an old network.",
                chart="rs-b",
            ),
            Stop(
                "running var starts at 1",
                "Eval accuracy collapses while training works: the start value of 1.",
                chart="rs-c",
            ),
            Stop("PreciseBN fixes it", "Recompute the statistics after training: the gap closes.", chart="rs-precise"),
        ),
    ),
    Section(
        "Train mode vs eval mode in production",
        "train_vs_inference",
        3,
        "A BN network that works in the lab can fail in production, where inputs come one at a time; and "
        "small training batches hurt BN.",
        (
            Stop(
                "forgot model.eval()",
                "The classic bug: fine in batches of 64, about 20% frame by frame (chance: 10%).",
                chart="tvi-story",
            ),
            Stop(
                "batch size 1 in train mode",
                "BatchNorm1d refuses one sample; BatchNorm2d runs, badly.",
                chart="tvi-single",
            ),
            Stop(
                "batch-mates change the answer",
                "In train mode an image's prediction depends on its batch.",
                chart="tvi-mates",
            ),
            Stop("small batches: BN vs GroupNorm", "Batch 2: BN collapses, GroupNorm does not.", chart="tvi-sweep"),
        ),
    ),
    Section(
        "Alternatives that do not use the batch",
        "alternatives",
        2,
        "LayerNorm, InstanceNorm and GroupNorm normalise within one sample, so the batch size does not matter. "
        "The cube shows which values share one mean and variance.",
        (
            Stop("GroupNorm with G=1 is LayerNorm", "One group = all channels of a sample.", chart="alt-tensor"),
            Stop("GroupNorm with G=C is InstanceNorm", "One channel per group.", chart="alt-tensor"),
        ),
    ),
    Section(
        "Why BN helps: the evidence",
        "why_bn",
        5,
        'The answer of the paper that introduced BN (Ioffe & Szegedy), "it reduces internal covariate shift", '
        "has been tested and largely replaced (Santurkar et al., How Does Batch Normalization Help "
        "Optimization?). Five live experiments: the range of learning rates, the smoothness of the loss, noisy BN, "
        "scale invariance and the effective learning rate, and re-estimated statistics under a domain shift.",
        (
            Stop(
                "BN widens the usable learning rates",
                "Which rates train with BN that do not without it?",
                chart="why-lr-range",
            ),
            Stop(
                "a smoother loss landscape", "Why does a narrower band let us take larger steps?", chart="why-landscape"
            ),
            Stop(
                "noisy BN still trains",
                "More shift than no BN, yet it learns: so what does BN really do?",
                chart="why-noisy-layers",
            ),
            Stop(
                "weight decay raises the effective rate",
                "Decay shrinks ‖w‖; what does that do to the step?",
                chart="why-scale",
            ),
            Stop(
                "AdaBN undoes a contrast change",
                "No labels, a few dozen images: what did we re-estimate?",
                chart="why-adabn",
            ),
        ),
    ),
)


def stops() -> list[tuple[Section, Stop]]:
    return [(section, stop) for section in TOUR for stop in section.stops]


def stop(view: str, preset: str) -> Stop | None:
    """The tour's stop showing `preset` on `view`, if there is one."""
    return next((s for section, s in stops() if (section.view, s.preset) == (view, preset)), None)


def next_stop(view: str, preset: str) -> tuple[Section, Stop] | None:
    """The stop after the one showing `preset` on `view`; None at the end or off the tour."""
    every = stops()
    here = [i for i, (section, stop) in enumerate(every) if (section.view, stop.preset) == (view, preset)]
    return every[here[0] + 1] if here and here[0] + 1 < len(every) else None
