"""Offline data: bundled digits, synthetic 2-D sets, and local MNIST IDX/.npz files."""

from __future__ import annotations

import functools
import gzip
import importlib.util
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from normviz.config import DataSpec, SpecError

SYNTHETIC_DEFAULT_SAMPLES = 1000
MNIST_DEFAULT_SAMPLES = 10_000  # keeps live training snappy; n_samples asks for more
MAX_FILE_BYTES = 200 * 2**20
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(ValueError):
    """Data that cannot be used, with a message a user can act on."""


@dataclass(frozen=True)
class Dataset:
    x_train: torch.Tensor  # (N, D) float32
    y_train: torch.Tensor  # (N,) int64
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    name: str
    image_shape: tuple[int, int] | None  # (H, W) when the features are a flattened image

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    def __repr__(self):
        return (
            f"Dataset({self.name}: {len(self.x_train)} train, {len(self.x_test)} test, "
            f"{self.n_features} features, {self.n_classes} classes)"
        )


def load(spec: DataSpec) -> Dataset:
    """The data set a spec describes (cached: specs are hashable)."""
    return _load(spec.dataset, spec.data_path, spec.n_samples, spec.test_fraction, spec.scaling, spec.noise, spec.seed)


@functools.lru_cache(maxsize=16)
def _load(dataset, data_path, n_samples, test_fraction, scaling, noise, seed) -> Dataset:
    rng = np.random.default_rng(seed)
    image_shape = None
    if dataset == "digits":
        x, y = read_digits()
        image_shape = (8, 8)
    elif dataset == "mnist-file":
        x, y = read_mnist(data_path)
        image_shape = (28, 28) if x.shape[1] == 784 else None
        n_samples = n_samples or min(len(x), MNIST_DEFAULT_SAMPLES)
    else:
        x, y = synthetic_2d(dataset, n_samples or SYNTHETIC_DEFAULT_SAMPLES, noise, rng)
    if n_samples and n_samples < len(x):
        keep = rng.choice(len(x), n_samples, replace=False)
        x, y = x[keep], y[keep]
    order = rng.permutation(len(x))
    n_test = max(1, int(round(len(x) * test_fraction)))
    test, train = order[:n_test], order[n_test:]
    if len(train) < 2:
        raise DataError(f"only {len(train)} training samples left after the split; use more samples")
    x_train, x_test = x[train], x[test]
    if scaling == "standardize":
        mean, std = x_train.mean(0), x_train.std(0)
        std[std < 1e-8] = 1.0  # constant pixels stay constant instead of dividing by zero
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    elif scaling == "unit":
        top = max(float(np.abs(x_train).max()), 1e-8)
        x_train, x_test = x_train / top, x_test / top
    n_classes = int(y.max()) + 1
    as_x = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    as_y = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))  # noqa: E731
    return Dataset(as_x(x_train), as_y(y[train]), as_x(x_test), as_y(y[test]), n_classes, dataset, image_shape)


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (1,797 images), read from its CSV without importing
    scikit-learn, which takes seconds to import."""
    root = importlib.util.find_spec("sklearn").submodule_search_locations[0]
    table = np.loadtxt(Path(root) / "datasets" / "data" / "digits.csv.gz", delimiter=",", dtype=np.float32)
    return table[:, :-1], table[:, -1].astype(np.int64)


def synthetic_2d(name: str, n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Moons, circles, spirals (3 arms) or blobs (4 Gaussians): (n, 2) float32 points and labels."""
    if name == "moons":
        y = np.arange(n) % 2
        t = rng.uniform(0, np.pi, n)
        x = np.where(
            y[:, None] == 0, np.stack([np.cos(t), np.sin(t)], 1), np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1)
        ) + rng.normal(0, noise, (n, 2))
    elif name == "circles":
        y = np.arange(n) % 2
        t = rng.uniform(0, 2 * np.pi, n)
        radius = np.where(y == 0, 1.0, 0.5)[:, None]
        x = radius * np.stack([np.cos(t), np.sin(t)], 1) + rng.normal(0, noise * 0.5, (n, 2))
    elif name == "spirals":
        arms = 3
        y = np.arange(n) % arms
        r = rng.uniform(0.05, 1.0, n)
        theta = y * 2 * np.pi / arms + r * 2.5 * np.pi + rng.normal(0, noise, n)
        x = np.stack([r * np.cos(theta), r * np.sin(theta)], 1)
    elif name == "blobs":
        centers = np.array([[-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [1.0, -1.0]])
        y = np.arange(n) % len(centers)
        x = centers[y] + rng.normal(0, 0.2 + noise, (n, 2))
    else:
        raise DataError(f"unknown data set {name!r}")
    return x.astype(np.float32), np.asarray(y, dtype=np.int64)


def read_mnist(path: str) -> tuple[np.ndarray, np.ndarray]:
    """MNIST/Fashion-MNIST from an .npz (x_train/y_train[/x_test/y_test]) or a folder of IDX files."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"data_path {path!r} does not exist")
    if not (p.is_file() or p.is_dir()):
        raise DataError(f"data_path {path!r} is neither a regular file nor a folder")
    if p.is_file():
        if p.suffix != ".npz":
            raise DataError(f"data_path {path!r}: expected a folder of IDX files or an .npz file")
        return _read_npz(p)
    images = sorted(f for f in p.iterdir() if "images" in f.name and "idx3" in f.name)
    labels = sorted(f for f in p.iterdir() if "labels" in f.name and "idx1" in f.name)
    if not images or len(images) != len(labels):
        raise DataError(f"{path!r} needs matching *images-idx3* and *labels-idx1* files (optionally .gz)")
    xs, ys = zip(*[(read_idx(i), read_idx(lab)) for i, lab in zip(images, labels)])
    x, y = np.concatenate([a.reshape(len(a), -1) for a in xs]), np.concatenate(ys)
    return _check_xy(x, y, str(p))


def _read_npz(p: Path) -> tuple[np.ndarray, np.ndarray]:
    _check_size(p)
    try:
        with np.load(p, allow_pickle=False) as z:
            keys = set(z.files)
            if {"x_train", "y_train"} <= keys:
                x = [z["x_train"]] + ([z["x_test"]] if "x_test" in keys else [])
                y = [z["y_train"]] + ([z["y_test"]] if "y_test" in keys else [])
            elif {"x", "y"} <= keys:
                x, y = [z["x"]], [z["y"]]
            else:
                raise DataError(f"{p.name}: expected arrays x_train/y_train or x/y, found {sorted(keys)}")
            x = np.concatenate([a.reshape(len(a), -1) for a in x])
            y = np.concatenate(y)
    except (OSError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{p.name}: not a readable .npz file ({exc})") from None
    return _check_xy(x, y, p.name)


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (the MNIST format), gzipped or not, checked against its header."""
    _check_size(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise DataError(f"{path.name}: cannot read ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path.name}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path.name}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"{path.name}: header says {shape} but the file holds {len(raw) - header} data bytes")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape)


def _check_size(path: Path):
    if path.stat().st_size > MAX_FILE_BYTES:
        raise DataError(f"{path.name}: larger than {MAX_FILE_BYTES // 2**20} MB")


def _check_xy(x: np.ndarray, y: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    if x.dtype.kind not in "uif" or y.dtype.kind not in "ui":
        raise DataError(f"{where}: images must be numeric and labels integers (got {x.dtype}, {y.dtype})")
    if len(x) != len(y) or len(x) < 10:
        raise DataError(f"{where}: {len(x)} images but {len(y)} labels (need matching counts, at least 10)")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise DataError(f"{where}: images contain NaN or infinite values")
    if y.min() < 0 or y.max() > 999:
        raise DataError(f"{where}: labels must lie in 0..999")
    return x, y.astype(np.int64)


def load_checked(spec: DataSpec) -> Dataset:
    """`load`, with every data problem turned into a SpecError naming the data settings."""
    try:
        return load(spec)
    except DataError as exc:
        raise SpecError(f"data: {exc}") from None
