"""Offline data: digits, synthetic sets, and MNIST IDX/.npz files that the tests write themselves."""

import gzip
import struct

import numpy as np
import pytest

from normviz.config import DataSpec, SpecError
from normviz.data import DataError, load, load_checked, read_idx, read_mnist


def write_idx(path, array: np.ndarray, gz=False):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.fixture
def mnist_dir(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    labels = np.arange(30, dtype=np.uint8) % 10
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images[:20], gz=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels[:20], gz=True)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images[20:])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels[20:])
    return tmp_path, images, labels


def test_digits_split_and_standardisation():
    data = load(DataSpec())
    assert data.n_features == 64 and data.n_classes == 10 and data.image_shape == (8, 8)
    assert len(data.x_train) + len(data.x_test) == 1797
    assert len(data.x_test) == round(1797 * 0.25)
    assert abs(float(data.x_train.mean())) < 1e-5
    varying = data.x_train.std(0) > 0
    assert np.allclose(data.x_train[:, varying].std(0, unbiased=False).numpy(), 1, atol=1e-4)


def test_split_depends_on_seed_and_is_reproducible():
    a, b, c = load(DataSpec(seed=1)), load(DataSpec(seed=1)), load(DataSpec(seed=2))
    assert (a.y_train == b.y_train).all() and not (a.y_train == c.y_train).all()


def test_unit_scaling_maps_pixels_into_0_1():
    data = load(DataSpec(scaling="unit"))
    assert float(data.x_train.min()) == 0 and float(data.x_train.max()) == 1


@pytest.mark.parametrize("name, classes", [("moons", 2), ("circles", 2), ("spirals", 3), ("blobs", 4)])
def test_synthetic_sets(name, classes):
    data = load(DataSpec(dataset=name, n_samples=400))
    assert data.n_features == 2 and data.n_classes == classes
    assert len(data.x_train) + len(data.x_test) == 400
    assert set(data.y_train.tolist()) == set(range(classes))


def test_idx_reader_round_trip(mnist_dir):
    path, images, labels = mnist_dir
    assert np.array_equal(read_idx(path / "train-images-idx3-ubyte.gz"), images[:20])
    assert np.array_equal(read_idx(path / "t10k-labels-idx1-ubyte"), labels[20:])
    x, y = read_mnist(str(path))
    assert x.shape == (30, 784) and sorted(y.tolist()) == sorted(labels.tolist())


def test_mnist_file_dataset(mnist_dir):
    path, _, _ = mnist_dir
    data = load(DataSpec(dataset="mnist-file", data_path=str(path), test_fraction=0.2))
    assert data.n_features == 784 and data.image_shape == (28, 28) and len(data.x_test) == 6


def test_npz(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.random((12, 4, 4)), y_train=np.arange(12) % 3)
    x, y = read_mnist(str(tmp_path / "d.npz"))
    assert x.shape == (12, 16) and y.tolist() == (np.arange(12) % 3).tolist()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05abc"), "header says"),
        (lambda p: p.write_bytes(b"PK\x03\x04 not idx"), "magic"),
        (lambda p: p.write_bytes(b"\x00\x00\x08"), "magic"),
    ],
)
def test_bad_idx_files_are_rejected_clearly(tmp_path, make, message):
    p = tmp_path / "x-images-idx3-ubyte"
    make(p)
    with pytest.raises(DataError, match=message):
        read_idx(p)


def test_bad_npz_files_are_rejected_clearly(tmp_path):
    np.savez(tmp_path / "nan.npz", x=np.full((12, 3), np.nan), y=np.zeros(12, int))
    np.savez(tmp_path / "keys.npz", a=np.zeros(3))
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}] * 12, dtype=object), y=np.zeros(12, int))
    np.savez(tmp_path / "count.npz", x=np.zeros((12, 3)), y=np.zeros(11, int))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    for name, message in [
        ("nan", "NaN"),
        ("keys", "expected arrays"),
        ("obj", "only numbers"),
        ("count", "labels"),
        ("junk", "readable"),
    ]:
        with pytest.raises(DataError, match=message):
            read_mnist(str(tmp_path / f"{name}.npz"))


def test_missing_or_wrong_paths_become_spec_errors(tmp_path):
    for path in (str(tmp_path / "nope"), str(tmp_path)):
        with pytest.raises(SpecError, match="data"):
            load_checked(DataSpec(dataset="mnist-file", data_path=path))
