"""Shared pieces of the "Reproduce in PyTorch" snippets that the lessons (normviz/lessons/) generate.

A snippet is plain text: a short script that imports torch (and scikit-learn for data), runs in
seconds on a CPU and prints what the page shows. `tests/test_snippets.py` runs every one.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from normviz.config import Spec, ViewsSpec
from normviz.layers import ACTIVATION_FORMS


def activation_layer(name: str) -> str:
    """The torch layer of an activation, as source: "nn.ReLU()"."""
    return f"nn.{ACTIVATION_FORMS[name].module.__name__}()"


SYNTHETIC_DEFAULT_SAMPLES = 1000  # as in normviz.data
DIGITS_SAMPLES = 1797


def experiment_snippet(snippets: dict[type[Spec], Callable[[Spec], str]], spec: Spec) -> str:
    """The snippet of the experiment `spec` runs; a page's spec of several experiments (a ViewsSpec) gives
    its current one's. `snippets`: each experiment's Spec class -> its snippet."""
    own = spec.sub() if isinstance(spec, ViewsSpec) else spec
    return snippets[type(own)](own)


def init_std_expr(init: str, std: float, fan_in: str = "m.in_features") -> str:
    """The weight std of an init scheme as Python source (same rules as normviz.stacked.init_std)."""
    return {"std": f"{std:g}", "xavier": f"{fan_in} ** -0.5", "he": f"(2 / {fan_in}) ** 0.5"}[init]


STANDARDIZED = "(x - x.mean(0)) / (x.std(0) + 1e-8)"


def digits_lines(n_train: int, scaled: str = STANDARDIZED, rows: bool = False) -> str:
    """Loading scikit-learn's 8x8 digits, split in order as the digits experiments split them, as
    x_train, y_train, x_test, y_test (`rows`: each image as a sequence of its 8 rows)."""
    shape = ".reshape(-1, 8, 8)" if rows else ""
    return "\n".join(
        [
            "x, y = load_digits(return_X_y=True)",
            f"x, y = torch.tensor({scaled}, dtype=torch.float32){shape}, torch.tensor(y)"
            + ("  # 8 rows = 8 steps" if rows else ""),
            f"x_train, y_train, x_test, y_test = x[:{n_train}], y[:{n_train}], x[{n_train}:], y[{n_train}:]",
        ]
    )


def data_lines(spec) -> tuple[str, list[str]]:
    """(import line, code lines) loading a DataSpec's data as x_train, y_train, x_test, y_test tensors."""
    n = spec.n_samples or SYNTHETIC_DEFAULT_SAMPLES
    sets = {
        "digits": ("load_digits", "load_digits(return_X_y=True)  # 1,797 images of 8x8 pixels"),
        "moons": ("make_moons", f"make_moons({n}, noise={spec.noise:g}, random_state={spec.seed})"),
        "circles": (
            "make_circles",
            f"make_circles({n}, noise={spec.noise / 2:g}, factor=0.5, random_state={spec.seed})",
        ),
        "blobs": (
            "make_blobs",
            f"make_blobs({n}, centers=[[-1, -1], [1, 1], [-1, 1], [1, -1]], "
            f"cluster_std={0.2 + spec.noise:g}, random_state={spec.seed})",
        ),
    }
    dataset, note = spec.dataset, ""
    if dataset not in sets:  # not in scikit-learn: a stand-in keeps the snippet self-contained
        note = f"  # the app uses {dataset}; a stand-in keeps this self-contained"
        dataset = "moons" if dataset == "spirals" else "digits"
    func, call = sets[dataset]
    n_test, n_train = split_sizes(spec)
    kept, total = n_test + n_train, DIGITS_SAMPLES if dataset == "digits" else n
    lines = [
        f"torch.manual_seed({spec.seed})",
        f"x, y = {call}{note}",
        "x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y)",
        f"test, train = torch.randperm(len(x)){f'[:{kept}]' if kept < total else ''}.split([{n_test}, {n_train}])",
        "x_train, y_train, x_test, y_test = x[train], y[train], x[test], y[test]",
    ]
    if spec.scaling == "standardize":
        lines += [
            "mu, sd = x_train.mean(0), x_train.std(0).where(x_train.std(0) > 1e-8, 1.0)  # train-set stats",
            "x_train, x_test = (x_train - mu) / sd, (x_test - mu) / sd",
        ]
    elif spec.scaling == "unit":
        lines += ["x_train, x_test = x_train / x_train.max(), x_test / x_train.max()  # pixels to [0, 1], as the book"]
    return f"from sklearn.datasets import {func}", lines


def split_sizes(spec) -> tuple[int, int]:
    """(test, train) sample counts of the snippet's data, as normviz.data splits them."""
    n = spec.n_samples or SYNTHETIC_DEFAULT_SAMPLES
    total = DIGITS_SAMPLES if spec.dataset not in ("moons", "circles", "blobs", "spirals") else n
    kept = min(spec.n_samples or total, total)
    n_test = max(1, round(kept * spec.test_fraction))
    return n_test, kept - n_test


def logspace_expr(hi: float, lo: float, n: int) -> str:
    return f"torch.logspace({math.log10(hi):.4g}, {math.log10(lo):.4g}, {n}).tolist()"
