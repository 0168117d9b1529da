"""Offline data: bundled digits, synthetic 2-D sets, MNIST files, and a session's uploaded CSV or .npz.

Where files come from decides what a message may say:
- the command line's `data_path`: the user's own machine; any path, and errors say what is wrong with it;
- the browser's `data_file`: only a name listed in the server's data folder (`NORMVIZ_DATA_DIR`); any other
  name, whatever it points at, gets one and the same message, so a URL learns nothing about the server's files;
- an upload: bytes held by the session (never a server file), checked before use and registered under their
  content hash for the runs. A worker process is handed the `Upload` (arrays and strings) and registers it.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import io
import os
import re
import stat
import struct
import weakref
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from normviz.config import DataSpec, SpecError, quote

SYNTHETIC_DEFAULT_SAMPLES = 1000
MNIST_DEFAULT_SAMPLES = 10_000  # keeps live training snappy; n_samples asks for more
MAX_FILE_BYTES = 200 * 2**20  # a file on disk (compressed size)
MAX_ARRAY_BYTES = 128 * 2**20  # the arrays of one .npz once unpacked: MNIST's uint8 images are 55 MB
MAX_FEATURES = 4096  # a 64x64 image; wider inputs would make the first layer the size of the machine
MAX_LABEL = 999
MIN_SAMPLES = 10
DATA_DIR_ENV = "NORMVIZ_DATA_DIR"
NPZ_LAYOUTS = (("x_train", "y_train", "x_test", "y_test"), ("x", "y"))
UNREADABLE = (
    "cannot be read as a data set: expected an .npz file with arrays x and y (or x_train, y_train and "
    "optionally x_test, y_test), or a folder of MNIST IDX files"
)
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


@dataclass(eq=False)
class Upload:
    """A checked uploaded data set: what a session holds and its runs read, under its content hash."""

    key: str  # "sha256:<hex>" of the file's bytes
    name: str  # the file name the browser gave, for messages
    x: np.ndarray  # (N, D) numeric, as uploaded (uint8 images stay uint8)
    y: np.ndarray  # (N,) int64
    image_shape: tuple[int, int] | None

    def __repr__(self):
        return f"Upload({self.name}: {self.x.shape[0]} samples, {self.x.shape[1]} features, {self.key[:15]}…)"


def load(spec: DataSpec) -> Dataset:
    """The data set a spec describes (cached for named sets: specs are hashable; uploads are not cached, so
    an upload lives no longer than the sessions holding it)."""
    if spec.dataset == "upload":
        up = uploaded(spec.upload)
        n_samples = spec.n_samples or min(len(up.x), MNIST_DEFAULT_SAMPLES)
        rng = np.random.default_rng(spec.seed)
        return _split(up.x, up.y, up.image_shape, "upload", n_samples, spec.test_fraction, spec.scaling, rng)
    return _load(
        spec.dataset,
        spec.data_file,
        spec.data_path,
        spec.n_samples,
        spec.test_fraction,
        spec.scaling,
        spec.noise,
        spec.seed,
    )


@functools.lru_cache(maxsize=16)
def _load(dataset, data_file, data_path, n_samples, test_fraction, scaling, noise, seed) -> Dataset:
    rng = np.random.default_rng(seed)
    image_shape = None
    if dataset == "digits":
        x, y = read_digits()
        image_shape = (8, 8)
    elif dataset == "mnist-file":
        x, y = read_mnist(data_path) if data_path else read_data_file(data_file)
        image_shape = guess_image_shape(x.shape[1])
        n_samples = n_samples or min(len(x), MNIST_DEFAULT_SAMPLES)
    else:
        x, y = synthetic_2d(dataset, n_samples or SYNTHETIC_DEFAULT_SAMPLES, noise, rng)
    return _split(x, y, image_shape, dataset, n_samples, test_fraction, scaling, rng)


def _split(x, y, image_shape, name, n_samples, test_fraction, scaling, rng: np.random.Generator) -> Dataset:
    """Subsample, split into train and test, scale (with the training set's statistics), as tensors."""
    if n_samples and n_samples < len(x):
        keep = rng.choice(len(x), n_samples, replace=False)
        x, y = x[keep], y[keep]
    order = rng.permutation(len(x))
    n_test = max(1, int(round(len(x) * test_fraction)))
    test, train = order[:n_test], order[n_test:]
    if len(train) < 2:
        raise DataError(f"only {len(train)} training samples left after the split; use more samples")
    x_train, x_test = x[train].astype(np.float32), x[test].astype(np.float32)
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
    return Dataset(as_x(x_train), as_y(y[train]), as_x(x_test), as_y(y[test]), n_classes, name, image_shape)


def guess_image_shape(n_features: int) -> tuple[int, int] | None:
    """Flattened MNIST (784) or digits (64) are images; other widths are plain features."""
    return {784: (28, 28), 64: (8, 8)}.get(n_features)


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
        raise DataError(f"unknown data set {quote(name)}")
    return x.astype(np.float32), np.asarray(y, dtype=np.int64)


# --- the server's data folder (browser) and the user's own paths (command line) ----------------------


def data_folder() -> Path | None:
    """The folder the server's operator named in NORMVIZ_DATA_DIR, resolved; None when unset."""
    named = os.environ.get(DATA_DIR_ENV, "").strip()
    if not named:
        return None
    try:
        return Path(named).expanduser().resolve()
    except (OSError, RuntimeError):
        return None


def data_files() -> list[str]:
    """Names the browser may pick: the .npz files and folders directly in the data folder (hidden ones and
    anything whose real location is outside the folder left out)."""
    root = data_folder()
    if root is None:
        return []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return []
    names = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            real = Path(entry.path).resolve(strict=True)
            kind = real.stat().st_mode
        except (OSError, RuntimeError):
            continue
        if real.parent != root:  # a symlink leading out of the folder, or deeper into it
            continue
        if stat.S_ISDIR(kind) or (stat.S_ISREG(kind) and entry.name.endswith(".npz")):
            names.append(entry.name)
    return names


def not_a_data_file(name: str) -> DataError:
    """The one message for any data_file that is not listed: the same whether or where the path exists."""
    listed = data_files()
    offer = f"one of: {', '.join(quote(n) for n in listed[:20])}" if listed else "the server lists no data files"
    return DataError(f"data_file {quote(name)} is not a data file of the server's data folder ({offer})")


def read_data_file(name: str) -> tuple[np.ndarray, np.ndarray]:
    """An .npz file or IDX folder that data_files() lists, by name only."""
    if name not in data_files():
        raise not_a_data_file(name)
    return read_mnist(str(data_folder() / name), within=data_folder())


def read_mnist(path: str, within: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST/Fashion-MNIST from an .npz (x_train/y_train[/x_test/y_test] or x/y) or a folder of IDX files.

    With `within`, the IDX files must really lie in that folder (no symlink out). Any failure is a DataError:
    specific when this code found the problem, the generic UNREADABLE otherwise."""
    try:
        p = Path(path).expanduser()
        if not p.exists():
            raise DataError(f"data_path {quote(path)} does not exist")
        if p.is_file():
            if p.suffix != ".npz":
                raise DataError(f"data_path {quote(path)}: {UNREADABLE}")
            _check_size(p)
            return read_npz(p, p.name)[:2]
        if not p.is_dir():
            raise DataError(f"data_path {quote(path)}: {UNREADABLE}")
        real = p.resolve()
        files = [f for f in sorted(p.iterdir()) if within is None or f.resolve().parent == real]
        images = [f for f in files if "images" in f.name and "idx3" in f.name]
        labels = [f for f in files if "labels" in f.name and "idx1" in f.name]
        if not images or len(images) != len(labels):
            raise DataError(f"{quote(p.name)} needs matching *images-idx3* and *labels-idx1* files (optionally .gz)")
        xs, ys = zip(*[(read_idx(i), read_idx(lab)) for i, lab in zip(images, labels)])
        if len({a.shape[1:] for a in xs}) > 1:
            raise DataError(f"{quote(p.name)}: the IDX image files have different image sizes")
        return check_xy(np.concatenate([a.reshape(len(a), -1) for a in xs]), np.concatenate(ys), p.name)
    except DataError:
        raise
    except Exception:  # noqa: BLE001 - permissions, ~nosuchuser, devices, races: one wording for all
        raise DataError(f"data_path {quote(path)}: {UNREADABLE}") from None


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (the MNIST format), gzipped or not, checked against its header."""
    _check_size(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except (OSError, EOFError) as exc:
        raise DataError(f"{quote(path.name)}: cannot read ({type(exc).__name__})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{quote(path.name)}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{quote(path.name)}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"{quote(path.name)}: header says {shape} but the file holds {len(raw) - header} data bytes")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape)


def _check_size(path: Path):
    """A regular file of at most MAX_FILE_BYTES (a FIFO or device would block or never end)."""
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"{quote(path.name)}: not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise DataError(f"{quote(path.name)}: larger than {MAX_FILE_BYTES // 2**20} MB")


# --- checked readers of untrusted files: .npz and CSV ---------------------------------------------------


def read_npz(source: Path | bytes, name: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int] | None]:
    """x, y and the image shape (when x is (N, H, W)) from an .npz, not trusted: no pickles, and each member's
    unpacked size (the zip entry's and the .npy header's shape and dtype) is checked before any array is read,
    so a small file cannot claim gigabytes."""
    try:
        with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as zf:
            members = {i.filename.removesuffix(".npy"): i for i in zf.infolist() if i.filename.endswith(".npy")}
            layout = next((keys for keys in NPZ_LAYOUTS if set(keys[:2]) <= set(members)), None)
            if layout is None:
                raise DataError(f"{quote(name)}: expected arrays x and y, or x_train and y_train (and x_test, y_test)")
            keys = [k for k in layout if k in members]
            total = sum(members[k].file_size for k in keys)
            if total > MAX_ARRAY_BYTES:
                raise DataError(
                    f"{quote(name)}: its arrays unpack to {_mb(total)}; the limit is {_mb(MAX_ARRAY_BYTES)}"
                )
            arrays = {k: _read_npy_member(zf, members[k], name) for k in keys}
    except DataError:
        raise
    except Exception:  # noqa: BLE001 - not a zip, corrupt, encrypted, a bad .npy header: one wording
        raise DataError(f"{quote(name)}: not a readable .npz file (a zip archive of .npy arrays)") from None
    xs = [arrays[k] for k in keys if k.startswith("x")]
    ys = [arrays[k] for k in keys if k.startswith("y")]
    if len(xs) != len(ys):
        raise DataError(f"{quote(name)}: x_test and y_test come together")
    for x in xs:
        if x.ndim < 2:
            raise DataError(
                f"{quote(name)}: x must hold one row of features per sample (2-D or more); it has shape {x.shape}"
            )
    for y in ys:
        if y.ndim != 1:
            raise DataError(f"{quote(name)}: labels must be one whole number per sample (1-D); y has shape {y.shape}")
    if len({x.shape[1:] for x in xs}) > 1:
        raise DataError(f"{quote(name)}: x_train and x_test have different shapes per sample")
    image_shape = xs[0].shape[1:] if xs[0].ndim == 3 else None
    x, y = check_xy(np.concatenate([a.reshape(len(a), -1) for a in xs]), np.concatenate(ys), name)
    return x, y, image_shape


def _read_npy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> np.ndarray:
    member = f"{quote(name)}, array {quote(info.filename)}"
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise DataError(f"{member}: unsupported .npy version {version}")
        if dtype.hasobject or dtype.kind not in "biuf":
            raise DataError(f"{member}: holds {dtype} values; only numbers are read")
        declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if declared > MAX_ARRAY_BYTES or declared > info.file_size:
            raise DataError(
                f"{member}: its header declares {shape} {dtype} ({_mb(declared)}) but the archive holds "
                f"{_mb(info.file_size)}; the limit is {_mb(MAX_ARRAY_BYTES)}"
            )
        raw = f.read(declared)
    if len(raw) != declared:
        raise DataError(f"{member}: truncated array data")
    array = np.frombuffer(raw, dtype)
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


def read_csv(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """x, y from CSV text: each row the features, then an integer label; one header row allowed."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{quote(name)}: not a text file (a CSV must be UTF-8 text)") from None
    if not text.strip():
        raise DataError(f"{quote(name)}: the file is empty")
    first = text.lstrip().split("\n", 1)[0]
    header = any(_not_a_number(cell) for cell in first.split(","))
    try:
        table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.float64, ndmin=2, skiprows=int(header))
    except ValueError as exc:
        row = re.search(r"at row (\d+)", str(exc))
        where = f" (line {int(row[1]) + 1 + int(header)})" if row else ""
        raise DataError(
            f"{quote(name)}: not a table of numbers{where}; every row needs the same number of comma-separated "
            "numbers: the features, then the label (one header row is allowed)"
        ) from None
    if table.shape[1] < 2:
        raise DataError(f"{quote(name)}: needs at least two columns: the features, then the label")
    return check_xy(table[:, :-1].astype(np.float32), table[:, -1], name)


def _not_a_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return True
    return False


def check_xy(x: np.ndarray, y: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Numeric features (N, D) and whole-number labels (N,): counts, sizes, NaN/inf, classes, label range."""
    where = quote(name)
    if x.dtype.kind not in "uif" or y.dtype.kind not in "uif":
        raise DataError(f"{where}: features and labels must be numbers (got {x.dtype}, {y.dtype})")
    if len(x) != len(y) or len(x) < MIN_SAMPLES:
        raise DataError(f"{where}: {len(x)} samples but {len(y)} labels (need matching counts, at least {MIN_SAMPLES})")
    if not 1 <= x.shape[1] <= MAX_FEATURES:
        raise DataError(f"{where}: {x.shape[1]} features per sample; between 1 and {MAX_FEATURES} are allowed")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise DataError(f"{where}: the features contain NaN or infinite values")
    if y.dtype.kind == "f" and (not np.isfinite(y).all() or (y != np.round(y)).any()):
        raise DataError(f"{where}: labels (the last column of a CSV) must be whole numbers")
    if y.min() < 0 or y.max() > MAX_LABEL:
        raise DataError(f"{where}: labels must lie in 0..{MAX_LABEL} (got {int(y.min())}..{int(y.max())})")
    if len(np.unique(y)) < 2:
        raise DataError(f"{where}: every label is {int(y[0])}; a classifier needs at least two classes")
    return x, y.astype(np.int64)


def _mb(n: int) -> str:
    if n < 2**20:
        return f"{n / 2**10:,.0f} KB"
    return f"{n / 2**20:,.1f} MB" if n < 2**30 else f"{n / 2**30:,.1f} GiB"


# --- uploads: checked, then registered by content hash for the runs -------------------------------------

_uploads: weakref.WeakValueDictionary[str, Upload] = weakref.WeakValueDictionary()


def read_upload(name: str, data: bytes, max_bytes: int) -> Upload:
    """A CSV or .npz upload checked (size, format, shape, dtype, NaN/inf, classes, label range) and
    registered; the caller (a session) keeps the returned Upload alive for as long as it uses it."""
    if len(data) > max_bytes:
        raise DataError(f"{quote(name)}: {_mb(len(data))}; uploads are limited to {_mb(max_bytes)}")
    suffix = Path(name).suffix.lower()
    image_shape = None
    if suffix == ".csv":
        x, y = read_csv(data, name)
    elif suffix == ".npz":
        x, y, image_shape = read_npz(data, name)
    else:
        raise DataError(f"{quote(name)}: expected a .csv or .npz file")
    if x.dtype.kind == "f" and x.dtype != np.float32:
        x = x.astype(np.float32)
    image_shape = image_shape or guess_image_shape(x.shape[1])
    up = Upload("sha256:" + hashlib.sha256(data).hexdigest(), name, x, y, image_shape)
    return register(up)


def register(up: Upload) -> Upload:
    """Make an upload findable by its key while someone holds it; the same bytes share one object."""
    return _uploads.setdefault(up.key, up)


def uploaded(key: str) -> Upload:
    """The registered upload with this key."""
    up = _uploads.get(key)
    if up is None:
        raise DataError("the uploaded file is no longer held by the server (the session ended?); upload it again")
    return up


def load_checked(spec: DataSpec) -> Dataset:
    """`load`, with every data problem turned into a SpecError naming the data settings."""
    try:
        return load(spec)
    except DataError as exc:
        raise SpecError(f"data: {exc}") from None
