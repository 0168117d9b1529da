"""(1) The init sweep (digits, 16 scales x (BN, no BN), 20 epochs) as one stacked computation, against
the naive way: a Python loop over 32 separate nn.Sequential models, on its faster thread count. Also both
on one thread, and the achieved GFLOP/s of the stacked run and its share of this machine's GEMM throughput.

    python -m bench --only init_sweep
"""

from __future__ import annotations

import torch
from torch import nn

from bench.common import Row, best_of, interleaved, matmul_peak_gflops
from normviz.data import load_checked
from normviz.experiments import init_sweep
from normviz.runs import final
from normviz.runtime import THREADS_PER_RUN, SpareCore
from normviz.train import BatchSampler

TARGET = 3.0  # issue 2; issue 6 hoped for 4x


def naive_mlp(
    spec: init_sweep.InitSweepSpec, n_in: int, n_out: int, std: float, bn: bool, generator: torch.Generator
) -> nn.Sequential:
    layers = []
    for fan_in in [n_in] + [spec.width] * (spec.depth - 1):
        layers += [nn.Linear(fan_in, spec.width)] + ([nn.BatchNorm1d(spec.width)] if bn else []) + [nn.ReLU()]
    net = nn.Sequential(*layers, nn.Linear(spec.width, n_out))
    for m in net:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std, generator=generator)
            nn.init.zeros_(m.bias)
    return net


def naive_sweep(spec: init_sweep.InitSweepSpec) -> list[list[float]]:
    """The book's loop: for each scale, train a BN and a plain net, one after the other; the train accuracy
    in eval mode after every epoch; a net whose loss turns non-finite stops, as in the stacked engine."""
    data = load_checked(spec)
    gen = torch.Generator().manual_seed(spec.seed)
    curves = []
    for bn in (True, False):
        for std in spec.init_stds():
            net = naive_mlp(spec, data.n_features, data.n_classes, std, bn, gen)
            opt = torch.optim.SGD(net.parameters(), lr=spec.lr)
            sampler = BatchSampler(len(data.x_train), spec.batch_size, gen)
            accs, diverged = [], False
            for _ in range(spec.epochs):
                for _ in range(sampler.batches_per_epoch):
                    if diverged:
                        break
                    idx = sampler.next()
                    loss = nn.functional.cross_entropy(net(data.x_train[idx]), data.y_train[idx])
                    if not torch.isfinite(loss):
                        diverged = True
                        break
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                with torch.no_grad():
                    acc = (net.eval()(data.x_train).argmax(1) == data.y_train).float().mean().item()
                net.train()
                accs.append(float("nan") if diverged else acc)
            curves.append(accs)
    return curves


def sweep_flops(spec: init_sweep.InitSweepSpec, n_in: int, n_out: int, n_train: int) -> float:
    """Matmul FLOPs of the whole sweep: training steps (forward + backward) and the per-epoch evaluations."""
    sizes = [n_in] + [spec.width] * spec.depth + [n_out]
    macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))  # per sample, forward
    steps = spec.epochs * (n_train // spec.batch_size)
    train = steps * spec.batch_size * (2 * macs + 4 * macs - 2 * n_in * spec.width)  # no input gradient
    evals = spec.epochs * n_train * 2 * macs
    return 2 * spec.scales * (train + evals)  # 2 nets per scale


def bmm_gflops(width: int, k: int = 32, batch: int = 100) -> float:
    """Throughput of the sweep's own matmul shape, (32, 100, 100) @ (32, 100, 100), on this thread's setting."""
    a, b = torch.randn(k, batch, width), torch.randn(k, width, width)
    return 2 * k * batch * width * width / best_of(lambda: torch.bmm(a, b), 20) / 1e9


def on_threads(threads: int, fn):
    def timed():
        torch.set_num_threads(threads)
        try:
            return fn()
        finally:
            torch.set_num_threads(THREADS_PER_RUN)

    return timed


def run(quick: bool = False) -> list[Row]:
    spec = init_sweep.InitSweepSpec(epochs=2 if quick else 20)
    data = load_checked(spec)
    final(init_sweep.run(init_sweep.InitSweepSpec(epochs=1)))  # warm-up: imports, allocator
    times = interleaved(
        {
            "stacked": lambda: final(init_sweep.run(spec)),  # as the app runs it: two threads while a core is free
            "stacked, 1 thread": lambda: final(init_sweep.run(spec, SpareCore(threads=1))),  # like for like
            "naive, 1 thread": lambda: naive_sweep(spec),
            "naive, 2 threads": on_threads(2, lambda: naive_sweep(spec)),
        },
        repeats=1 if quick else 2,
    )
    stacked, stacked_1 = times["stacked"].wall, times["stacked, 1 thread"].wall
    naive_1, naive_2 = times["naive, 1 thread"].wall, times["naive, 2 threads"].wall
    naive = min(naive_1, naive_2)
    ratio = naive / stacked
    flops = sweep_flops(spec, data.n_features, data.n_classes, len(data.x_train))
    peak = {n: on_threads(n, matmul_peak_gflops)() for n in (1, 2)}
    floor = flops / (on_threads(2, lambda: bmm_gflops(spec.width))() * 1e9)  # nothing but its matmuls
    label = f"init sweep, 32 nets x {spec.epochs} epochs"
    return [
        Row(
            f"(1) {label}: stacked vs naive loop",
            f"{stacked:.2f} s",
            f"{naive:.2f} s",
            f"{ratio:.2f}x faster",
            f">= {TARGET:g}x",
            ratio >= TARGET,
            f"naive on its faster thread count (1: {naive_1:.2f} s, 2: {naive_2:.2f} s); the stacked run uses "
            f"the second core while it is free; its matmuls alone take {floor:.2f} s on two threads",
        ),
        Row(
            "(1) the same, both on one thread",
            f"{stacked_1:.2f} s",
            f"{naive_1:.2f} s",
            f"{naive_1 / stacked_1:.2f}x faster",
            "",
            None,
            "the stacked engine without its second thread",
        ),
        Row(
            "(1) init sweep: achieved matmul throughput",
            f"{flops / stacked / 1e9:.1f} GFLOP/s",
            f"{peak[2]:.0f} GFLOP/s GEMM peak",
            f"{flops / stacked / 1e9 / peak[2]:.0%} of peak",
            "",
            None,
            f"peak: 1024x1024 float32 matmul on two threads ({peak[1]:.0f} GFLOP/s on one)",
        ),
    ]


if __name__ == "__main__":
    from bench.__main__ import main

    main(["--only", "init_sweep"])
