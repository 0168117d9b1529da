"""A classroom server that is safe to share: no server paths from a URL, checked uploads, bounded telemetry,
no traceback, and user text in messages shown as text (issue 19)."""

from __future__ import annotations

import gc
import io
import os
import re
import threading
import tracemalloc
import zipfile
from pathlib import Path
from urllib.parse import parse_qs

import numpy as np
import pytest
from malformed_queries import markup_queries, names_key, spec_classes, spec_kinds

from normviz import cli, data
from normviz.config import DataSpec, SpecError, quote
from normviz.data import DataError, read_npz, read_upload
from normviz.experiments.activations import ActivationsSpec

MB = 2**20
MARKUP = [
    "![x](http://127.0.0.1:9/b.png)",
    "[a](javascript:alert(1))",
    "**bold**",
    ":red[x]",
    ":material/home:",
    "<img src=x onerror=alert(1)>",
    "http://evil.example/login",
    "a`b`![x](http://127.0.0.1:9/c.png)",
    "1\n\n![x](http://127.0.0.1:9/d.png)",
]
RLO = "\u202e"


def outside_code(markdown: str) -> str:
    """The parts of a Markdown message that are not inline code: what Markdown would interpret."""
    return re.sub(r"`[^`]*`", "", markdown)


def _idx(path, magic: int, array: np.ndarray):
    header = bytes([0, 0, magic, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(">u1").tobytes())


def _npz_bytes(**arrays) -> bytes:
    out = io.BytesIO()
    np.savez_compressed(out, **arrays)
    return out.getvalue()


def _csv(x: np.ndarray, y: np.ndarray, header: bool = True) -> bytes:
    lines = ([",".join(f"f{i}" for i in range(x.shape[1])) + ",label"] if header else []) + [
        ",".join(f"{v:g}" for v in row) + f",{label}" for row, label in zip(x, y)
    ]
    return ("\n".join(lines) + "\n").encode()


# --- user text in messages ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", MARKUP + [f"evil{RLO}txt.csv", "", "   "])
def test_quote_makes_user_text_inert_markdown(text):
    shown = quote(text, 200)
    assert shown.startswith("`") and shown.endswith("`") and shown.count("`") == 2  # one code span
    assert "\n" not in shown and RLO not in shown
    assert outside_code(shown) == ""


def test_quote_shows_invisible_characters_as_escapes_and_clips():
    assert quote(f"a{RLO}b") == "`a\\u202eb`"
    assert quote("x" * 100) == "`" + "x" * 40 + "…`"


@pytest.mark.parametrize("key", MARKUP + [f"k{RLO}ey"])
def test_url_keys_and_values_reach_messages_only_as_code(key):
    spec, warnings = ActivationsSpec.from_query({key: "1", "depth": key, "dataset": key, "momenta": key})
    assert spec == ActivationsSpec() and len(warnings) >= 3
    for w in warnings:
        assert not re.search(r"\]\(|\*\*|:red\[|:material/|<img|http", outside_code(w)), w
        assert RLO not in w and "\n" not in w


@pytest.mark.parametrize("spec_name", sorted(c.__name__ for c in spec_classes()))
def test_markup_huge_numbers_and_rtl_in_urls_of_every_spec_come_back_as_code(spec_name):
    spec_cls = next(c for c in spec_classes() if c.__name__ == spec_name)
    default = spec_cls()
    for case in markup_queries(default.to_query(), spec_kinds(default.to_query())):
        spec, warnings = spec_cls.from_query(parse_qs(case.query, keep_blank_values=True))
        assert spec == default and names_key(warnings, case.expect), (case.label, warnings)
        for w in warnings:
            assert not re.search(r"\]\(|\*\*|:red\[|:material/|http", outside_code(w)), (case.label, w)
            assert RLO not in w and "\n" not in w, (case.label, w)


def test_page_messages_show_markup_as_code():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_string(
        "from normviz import ui\nfrom normviz.experiments.activations import ActivationsSpec\n"
        "ui.spec_controls(ActivationsSpec, 'activations')\n",
        default_timeout=60,
    )
    at.query_params["![x](http://127.0.0.1:9/b.png)"] = "1"
    at.query_params["depth"] = "[a](javascript:alert(1))"
    at.query_params["preset"] = "**bold** :red[x]"
    at.run()
    assert not at.exception
    messages = [w.value for w in at.warning]
    assert len(messages) == 3, messages
    for m in messages:
        assert not re.search(r"\]\(|\*\*|:red\[", outside_code(m)), m


# --- the server's data folder ---------------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A data folder with one good .npz and an IDX folder, and around it the things a URL must not reach."""
    folder = tmp_path / "data"
    folder.mkdir()
    rng = np.random.default_rng(0)
    np.savez(folder / "mine.npz", x=rng.random((30, 5)), y=np.arange(30) % 3)
    (folder / "idx").mkdir()
    _idx(folder / "idx" / "train-images-idx3-ubyte", 0x08, rng.integers(0, 255, (20, 28, 28)))
    _idx(folder / "idx" / "train-labels-idx1-ubyte", 0x08, np.arange(20) % 10)
    np.savez(tmp_path / "outside.npz", x=rng.random((30, 5)), y=np.arange(30) % 3)
    (folder / "link-out.npz").symlink_to(tmp_path / "outside.npz")
    (folder / ".hidden.npz").write_bytes((folder / "mine.npz").read_bytes())
    os.mkfifo(folder / "fifo.npz")
    monkeypatch.setenv(data.DATA_DIR_ENV, str(folder))
    return folder


def test_the_browser_lists_only_files_inside_the_data_folder(data_dir):
    assert data.data_files() == ["idx", "mine.npz"]
    assert data.load(DataSpec(dataset="mnist-file", data_file="mine.npz")).n_features == 5
    assert data.load(DataSpec(dataset="mnist-file", data_file="idx", n_samples=20)).image_shape == (28, 28)


def _message(name: str) -> str:
    with pytest.raises(SpecError) as caught:
        data.load_checked(DataSpec(dataset="mnist-file", data_file=name))
    return str(caught.value).replace(quote(name), "NAME")


def test_no_path_oracle_one_message_for_every_name_outside_the_list(data_dir, tmp_path):
    names = [
        str(tmp_path / "outside.npz"),  # exists, outside the folder
        str(tmp_path / "missing.npz"),  # does not exist
        "/etc/passwd",
        "/dev/zero",
        str(data_dir / "fifo.npz"),
        "fifo.npz",  # a FIFO inside the folder
        "link-out.npz",  # a symlink leading out
        ".hidden.npz",
        "~nosuchuser",
        "~root",
        "..",
        "../outside.npz",
        "idx/../../outside.npz",
        "/proc/1/root",
        "",
    ]
    messages = {name: _message(name) for name in names if name}
    assert len(set(messages.values())) == 1, messages
    assert "mine.npz" in next(iter(messages.values()))  # it says what can be picked


def test_a_fifo_or_a_symlink_out_inside_an_idx_folder_is_not_read(data_dir, tmp_path):
    (data_dir / "idx2").mkdir()
    os.mkfifo(data_dir / "idx2" / "train-images-idx3-ubyte")
    (data_dir / "idx2" / "train-labels-idx1-ubyte").symlink_to(data_dir / "idx" / "train-labels-idx1-ubyte")
    caught = []
    reader = threading.Thread(target=lambda: caught.append(_raises(lambda: data.read_data_file("idx2"))))
    reader.start()
    reader.join(20)
    assert not reader.is_alive(), "reading a FIFO blocked"
    assert isinstance(caught[0], DataError)


def _raises(fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the test checks its type
        return exc
    return None


@pytest.mark.parametrize(
    "path", ["~nosuchuser", "/proc/1/root", "/dev/zero", "/etc/passwd", "/", "/nonexistent/x.npz", "%00", "\x00"]
)
def test_cli_data_paths_fail_with_a_data_error(path):
    with pytest.raises(DataError):
        data.read_mnist(path)


@pytest.mark.parametrize("path", ["/proc/1/root", "~nosuchuser", "/dev/zero"])
def test_cli_blames_the_data_not_the_result_file(path, capsys):
    code = cli.main(["activations", "--dataset", "mnist-file", "--data-path", path, "--steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: data: ") and "cannot write" not in err and "Traceback" not in err


def test_the_url_cannot_set_a_server_path_or_an_upload():
    spec, warnings = ActivationsSpec.from_query(
        {"dataset": "mnist-file", "data_path": "/etc", "upload": "sha256:" + "0" * 64}
    )
    assert spec.data_path == "" and spec.upload == ""
    assert any("`data_path`" in w for w in warnings) and any("`upload`" in w for w in warnings)
    assert {"data_path", "upload"}.isdisjoint(ActivationsSpec(dataset="upload", upload="sha256:1").to_query())


# --- .npz and CSV files that cannot be trusted ----------------------------------------------------------


def _bomb(shape, dtype="<f4", data_bytes: int | None = None) -> bytes:
    """An .npz whose x.npy declares `shape`; with data_bytes, only that many zero bytes follow the header
    (a header that lies); else all of them, compressed (a decompression bomb), written in chunks."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": dtype, "fortran_order": False, "shape": shape})
    total = int(np.prod(shape)) * np.dtype(dtype).itemsize if data_bytes is None else data_bytes
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("x.npy", "w", force_zip64=True) as f:
            f.write(header.getvalue())
            chunk = bytes(MB)
            for start in range(0, total, MB):
                f.write(chunk[: min(MB, total - start)])
        zf.writestr("y.npy", _npy(np.arange(12) % 2))
    return out.getvalue()


def _npy(a: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, a)
    return out.getvalue()


def test_a_zip_bomb_is_rejected_before_any_array_is_read():
    bomb = _bomb((65536, 1024))  # 256 MB of float32 zeros
    assert len(bomb) < 2 * MB
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="unpack to 256.0 MB"):
            read_upload("bomb.npz", bomb, 20 * MB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * MB, peak


def test_a_header_declaring_95_gib_is_rejected_without_allocating():
    lying = _bomb((95 * 2**28,), data_bytes=4096)  # 95 GiB of float32 declared, 4 KB present
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="declares"):
            read_npz(lying, "lying.npz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * MB, peak


@pytest.mark.parametrize(
    "name, content, says",
    [
        ("renamed.npz", _npy(np.zeros((12, 3))), "not a readable .npz"),
        ("scalar.npz", _npz_bytes(x=np.float64(1.0), y=np.int64(1)), "one row of features per sample"),
        ("labels2d.npz", _npz_bytes(x=np.zeros((12, 3)), y=np.zeros((12, 2), int)), "y has shape (12, 2)"),
        ("onehot.npz", _npz_bytes(x=np.zeros((12, 3)), y=np.eye(12, dtype=int)), "1-D"),
        ("objects.npz", _npz_bytes(x=np.array([{"a": 1}] * 12, dtype=object), y=np.zeros(12, int)), "only numbers"),
        ("keys.npz", _npz_bytes(a=np.zeros(3)), "expected arrays x and y"),
        ("nan.npz", _npz_bytes(x=np.full((12, 3), np.nan), y=np.arange(12) % 2), "NaN"),
        ("inf.npz", _npz_bytes(x=np.full((12, 3), np.inf), y=np.arange(12) % 2), "NaN or infinite"),
        ("count.npz", _npz_bytes(x=np.zeros((12, 3)), y=np.arange(11) % 2), "12 samples but 11 labels"),
        ("one-class.npz", _npz_bytes(x=np.zeros((12, 3)), y=np.zeros(12, int)), "at least two classes"),
        ("negative.npz", _npz_bytes(x=np.zeros((12, 3)), y=np.arange(12) - 1), "labels must lie in 0..999"),
        ("fraction.npz", _npz_bytes(x=np.zeros((12, 3)), y=np.arange(12) / 2), "whole numbers"),
        ("strings.npz", _npz_bytes(x=np.array([["a"] * 3] * 12), y=np.arange(12) % 2), "only numbers"),
        ("wide.npz", _npz_bytes(x=np.zeros((12, 5000), np.uint8), y=np.arange(12) % 2), "5000 features"),
        ("junk.npz", b"PK\x03\x04 junk", "not a readable .npz"),
        ("data.txt", b"1,2\n", "expected a .csv or .npz"),
        ("text.csv", b"a,b,label\n1,x,0\n2,3,1\n", "not a table of numbers (line 2)"),
        ("ragged.csv", b"1,2,0\n1,1\n", "same number of comma-separated numbers"),
        ("latin1.csv", "é,1\n".encode("latin-1"), "not a text file"),
        ("onecol.csv", b"1\n2\n3\n", "at least two columns"),
        ("nan.csv", _csv(np.full((12, 2), np.nan), np.arange(12) % 2), "NaN"),
        ("labels.csv", _csv(np.zeros((12, 2)), np.arange(12) / 4), "whole numbers"),
        ("few.csv", _csv(np.zeros((3, 2)), np.arange(3) % 2), "at least 10"),
        ("empty.csv", b"", "the file is empty"),
    ],
)
def test_a_bad_upload_gets_one_clear_message(name, content, says):
    with pytest.raises(DataError) as caught:
        read_upload(name, content, 20 * MB)
    assert says in str(caught.value) and quote(name) in str(caught.value)


def test_an_upload_over_the_cap_is_refused_by_its_size():
    with pytest.raises(DataError, match="uploads are limited to 1.0 MB"):
        read_upload("big.csv", b"1,0\n" * (MB // 3), MB)


def test_good_uploads_train_by_their_content_hash_while_the_session_holds_them():
    rng = np.random.default_rng(1)
    x, y = rng.random((40, 3)), np.arange(40) % 4
    from_csv = read_upload("mine.csv", _csv(x, y), 20 * MB)
    from_csv_plain = read_upload("mine-plain.csv", _csv(x, y, header=False), 20 * MB)
    assert np.allclose(from_csv.x, x, atol=1e-5) and from_csv.y.tolist() == y.tolist()
    assert from_csv_plain.key != from_csv.key and np.array_equal(from_csv_plain.x, from_csv.x)
    images = rng.integers(0, 255, (20, 28, 28)).astype(np.uint8)
    split = read_upload(
        "mine.npz", _npz_bytes(x_train=images[:15], y_train=y[:15], x_test=images[15:], y_test=y[15:20]), 20 * MB
    )
    assert split.x.shape == (20, 784) and split.x.dtype == np.uint8 and split.image_shape == (28, 28)
    assert split.key.startswith("sha256:") and len(split.key) == 7 + 64
    spec = ActivationsSpec(dataset="upload", upload=from_csv.key, n_samples=0)
    loaded = data.load_checked(spec)
    assert len(loaded.x_train) + len(loaded.x_test) == 40 and loaded.n_classes == 4
    assert read_upload("again.csv", _csv(x, y), 20 * MB) is from_csv  # the same bytes: one object, one key
    del from_csv
    gc.collect()
    with pytest.raises(SpecError, match="upload it again"):  # the session let go: nothing stays behind
        data.load_checked(spec)


def _upload_page() -> str:
    return (
        "import streamlit as st\nfrom normviz import ui\nfrom normviz.data import load_checked\n"
        "from normviz.experiments.activations import ActivationsSpec\n"
        "spec = ui.spec_controls(ActivationsSpec, 'activations')\n"
        "st.text(f'{spec.dataset} {spec.upload} {load_checked(spec)!r}')\n"
    )


@pytest.mark.parametrize(
    "name, content, mime",
    [
        ("mine.csv", _csv(np.random.default_rng(2).random((50, 3)), np.arange(50) % 3), "text/csv"),
        ("mine.npz", _npz_bytes(x=np.random.default_rng(2).random((50, 3)), y=np.arange(50) % 3), "application/zip"),
    ],
)
def test_an_upload_in_the_page_switches_to_it_and_stays_out_of_the_url(name, content, mime):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_string(_upload_page(), default_timeout=60).run()
    assert not at.exception and "digits" in at.text[0].value
    at.file_uploader(key="activations.upload-file").set_value((name, content, mime)).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.text[0].value.startswith("upload sha256:")
    assert re.search(r"Dataset\(upload: \d+ train, \d+ test, 3 features, 3 classes\)", at.text[0].value)
    assert at.query_params["dataset"] in ("upload", ["upload"]) and "upload" not in at.query_params
    assert "data_path" not in at.query_params


@pytest.mark.parametrize(
    "name, content, says",
    [
        ("bad.csv", b"a,b\n1,zz\n2,3\n", "not a table of numbers"),
        ("bad.npz", _npy(np.zeros(3)), "not a readable .npz"),
        ("bomb.npz", _bomb((65536, 1024)), "unpack to 256.0 MB"),
    ],
)
def test_a_bad_upload_in_the_page_gets_one_message(name, content, says):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_string(_upload_page(), default_timeout=60).run()
    at.file_uploader(key="activations.upload-file").set_value((name, content, "application/octet-stream")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [says in e.value for e in at.error] == [True], [e.value for e in at.error]


def test_a_url_naming_a_file_outside_the_data_folder_warns_and_uses_none(data_dir):
    from streamlit.testing.v1 import AppTest

    for name in ("/etc/passwd", "/nonexistent"):
        at = AppTest.from_string(
            "from normviz import ui\nfrom normviz.experiments.activations import ActivationsSpec\n"
            "ui.spec_controls(ActivationsSpec, 'activations')\n",
            default_timeout=60,
        )
        at.query_params["dataset"], at.query_params["data_file"] = "mnist-file", name
        at.run()
        assert not at.exception
        assert [w.value for w in at.warning] == [f"{data.not_a_data_file(name)}; using none."]
        assert len(at.error) == 1 and "needs one file of the server's data folder" in at.error[0].value
    assert at.selectbox(key="activations.data_file").options == ["(none)", "idx", "mine.npz"]


# --- bounded telemetry ------------------------------------------------------------------------------------


def test_telemetry_is_capped_however_small_the_interval():
    from normviz.experiments import activations
    from normviz.experiments import running_stats as rs
    from normviz.figures import activations as figs
    from normviz.probes import MAX_FRAMES, MAX_RECORDS
    from normviz.runs import final

    small = dict(dataset="moons", n_samples=200, depth=1, width=4, batch_size=8)
    result = final(activations.run(ActivationsSpec(**small, steps=1500, probe_every=1)))
    steps = result.probe_steps
    assert MAX_RECORDS <= len(steps) <= MAX_RECORDS + 2 and steps[0] == 0 and steps[-1] == 1500
    assert len(set(np.diff(steps[:-1]))) == 1  # evenly spaced
    fig = figs.layer_histograms(result, "act", animate=True)
    assert len(fig.frames) == MAX_FRAMES and fig.frames[0].name == "0" and fig.frames[-1].name == "1500"
    momentum = final(rs.run(rs.RunningStatsSpec(**small, steps=1500, pop_every=1, recalibrate_batches=1)))
    assert len(momentum.pop_steps) <= MAX_RECORDS + 2 and momentum.pop_steps[-1] == 1500
    for spec_cls, name in ((ActivationsSpec, "probe_every"), (rs.RunningStatsSpec, "pop_every")):
        assert f"at most {MAX_RECORDS} " in spec_cls.field_info()[name]["help"]


# --- no traceback ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--x", "[[1" + "0" * 400 + ",1],[2,3]]"),
        ("--x", "[[1e400,1],[2,3]]"),
        ("--gamma", "1" + "0" * 400 + ",1"),
        ("--gamma", "[1" + "0" * 400 + ",1]"),
        ("--dy", "[[1" + "0" * 400 + ",1],[2,3]]"),
    ],
)
def test_huge_integers_in_by_hand_are_a_clear_error(flag, value, capsys):
    code = cli.main(["by_hand", flag, value])
    err = capsys.readouterr().err
    assert code == 2 and "finite" in err and "Traceback" not in err


def test_a_huge_integer_typed_into_by_hand_is_a_spec_error():
    from normviz.experiments.by_hand import ByHandSpec

    for name in ("x", "dy"):
        with pytest.raises(SpecError, match="not finite"):
            ByHandSpec(**{name: "[[1" + "0" * 400 + ",1],[2,3]]"})
    with pytest.raises(SpecError, match="finite"):
        ByHandSpec(gamma="1" + "0" * 400)


def test_the_static_folder_gets_plotly_js_and_nothing_else(tmp_path):
    import plotly

    from normviz import ui

    ui.serve_plotly_js(tmp_path)
    ui.serve_plotly_js(tmp_path)  # again: the copy is kept
    served = tmp_path / "static" / "plotly.min.js"
    assert [p.name for p in (tmp_path / "static").iterdir()] == ["plotly.min.js"]
    assert served.read_bytes() == (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()


def test_the_server_config_suits_a_shared_classroom_server():
    import tomllib

    root = Path(__file__).resolve().parents[1]
    config = tomllib.loads((root / ".streamlit" / "config.toml").read_text())
    server, client = config["server"], config["client"]
    assert server["enableXsrfProtection"] is True and server["enableCORS"] is True  # written out, not defaulted
    assert "address" not in server
    # ./static is served for the live charts' plotly.min.js, which app.py copies there: nothing else
    assert server["enableStaticServing"] is True and "/static/" in (root / ".gitignore").read_text().split()
    assert 1 <= server["maxUploadSize"] <= 50  # MB: read by ui.data_upload for its own check
    assert client["showErrorDetails"] == "none" and client["showErrorLinks"] is False
