"""The axes diagram's sets and statistics against torch, the page spec, presets, the CLI, and the page's views."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from live_pages import run_to_final
from streamlit.testing.v1 import AppTest

from normviz.cli import main
from normviz.config import SpecError
from normviz.experiments import alternatives as alt
from normviz.experiments.alternatives import (
    AXES_KINDS,
    VIEW_SPECS,
    AlternativesSpec,
    AxesSpec,
    normalize_by_sets,
    set_stats,
    stat_sets,
)
from normviz.lessons import alternatives as lesson
from normviz.lessons.alternatives import PRESETS
from normviz.runs import final

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (3, 6, 5)  # (N, C, H*W)


def partition(sets: np.ndarray) -> set[frozenset]:
    """The sets as sets of flat positions, so that two labellings of one partition compare equal."""
    flat = sets.ravel()
    return {frozenset(np.flatnonzero(flat == k).tolist()) for k in np.unique(flat)}


def test_each_norm_groups_the_values_it_should():
    n, c, hw = SHAPE
    bn, ln, inn = (stat_sets(k, SHAPE) for k in ("batch", "layer", "instance"))
    assert len(partition(bn)) == c and all(len(s) == n * hw for s in partition(bn))
    assert len(partition(ln)) == n and all(len(s) == c * hw for s in partition(ln))
    assert len(partition(inn)) == n * c and all(len(s) == hw for s in partition(inn))
    assert np.all(bn[:, 2] == bn[0, 2, 0]) and len(np.unique(bn[0])) == c  # one channel, every sample
    gn = stat_sets("group", SHAPE, 3)
    assert len(partition(gn)) == n * 3 and gn[1, 0, 0] == gn[1, 1, 4] != gn[1, 2, 0] != gn[0, 0, 0]


def test_group_norm_with_one_group_is_layer_norm_and_with_c_groups_instance_norm():
    assert partition(stat_sets("group", SHAPE, 1)) == partition(stat_sets("layer", SHAPE))
    assert partition(stat_sets("group", SHAPE, SHAPE[1])) == partition(stat_sets("instance", SHAPE))


def test_group_norm_rejects_groups_that_do_not_divide_the_channels():
    with pytest.raises(ValueError, match="4 groups do not divide 6 channels"):
        stat_sets("group", SHAPE, 4)


@pytest.mark.parametrize("groups", [1, 2, 3, 6])
def test_per_group_statistics_normalise_as_torch_group_norm(groups):
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(groups)) * 3 + 1
    ours = normalize_by_sets(x.numpy(), stat_sets("group", SHAPE, groups))
    np.testing.assert_allclose(ours, F.group_norm(x, groups).numpy(), atol=1e-5)
    mean, var, count = set_stats(x.numpy(), stat_sets("group", SHAPE, groups))
    g = x.reshape(SHAPE[0], groups, -1)
    np.testing.assert_allclose(mean, g.mean(-1).reshape(-1).numpy(), atol=1e-5)
    np.testing.assert_allclose(var, g.var(-1, unbiased=False).reshape(-1).numpy(), rtol=1e-5)
    assert np.all(count == SHAPE[1] // groups * SHAPE[2])


def test_batch_layer_and_instance_sets_normalise_as_torch():
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0)) * 2 - 1
    hat = {k: normalize_by_sets(x.numpy(), stat_sets(k, SHAPE)) for k in ("batch", "layer", "instance")}
    np.testing.assert_allclose(hat["batch"], F.batch_norm(x, None, None, training=True).numpy(), atol=1e-5)
    np.testing.assert_allclose(hat["layer"], F.layer_norm(x, SHAPE[1:]).numpy(), atol=1e-5)
    np.testing.assert_allclose(hat["instance"], F.instance_norm(x).numpy(), atol=1e-5)


def test_axes_result_on_the_real_tensor():
    r = final(alt.run(AxesSpec(groups=3)))  # 3 does not divide 8 channels: GroupNorm gets 2
    assert r.x.shape == (4, 8, 4) and r.groups == 2 and r.done
    assert np.abs(r.x).max() > 0.1  # real activations, not zeros
    for kind in AXES_KINDS:
        rows = r.table(kind)
        assert len(rows) == len(np.unique(r.sets[kind]))
        if kind == "rms":  # RMSNorm keeps the mean: each set's mean square becomes 1 (up to eps)
            ms = [row["std after"] ** 2 + row["mean after"] ** 2 for row in rows]
            assert ms == pytest.approx([1.0] * len(ms), abs=1e-3) and max(abs(row["mean after"]) for row in rows) > 0.05
            continue
        for row in rows:  # x_hat has mean 0 and std sqrt(var / (var + eps)) in every set
            assert abs(row["mean after"]) < 1e-4
            assert row["std after"] == pytest.approx(np.sqrt(row["variance"] / (row["variance"] + 1e-5)), abs=2e-4)
    assert r.table("group")[1]["values"] == "sample 0, group 1 (channels 4–7)"
    assert r.table("batch")[0]["count"] == 4 * 4
    assert json.dumps(r.summary())


def test_every_view_spec_takes_the_page_defaults():
    page = AlternativesSpec()
    for view, cls in VIEW_SPECS.items():
        assert page.replace(view=view).sub() == cls(), view
    assert AlternativesSpec.sidebar()[0] == "view" and AlternativesSpec.sidebar()[-1] == "seed"
    assert set(AlternativesSpec.sidebar()) <= set(AlternativesSpec.field_info())


def test_page_spec_validates_and_round_trips():
    spec = AlternativesSpec(view="sync-bn", workers=4, sub_batches=(2, 8))
    assert AlternativesSpec.from_query(spec.to_query()) == (spec, [])
    assert spec.sub().workers == 4
    with pytest.raises(SpecError, match="view"):
        AlternativesSpec(view="nonsense")
    with pytest.raises(SpecError, match="sub_batches"):
        AlternativesSpec(workers=32, sub_batches=(64,))


def test_presets_on_group_norm_say_the_truth():
    one = final(alt.run(PRESETS["GroupNorm with G=1 is LayerNorm"].spec(AlternativesSpec).sub()))
    np.testing.assert_array_equal(one.sets["group"], one.sets["layer"])
    np.testing.assert_allclose(one.x_hat["group"], one.x_hat["layer"])
    c = PRESETS["GroupNorm with G=C is InstanceNorm"].spec(AlternativesSpec).sub()
    every = final(alt.run(c))
    assert every.groups == c.channels
    np.testing.assert_array_equal(every.sets["group"], every.sets["instance"])


def test_every_preset_is_a_valid_spec_with_a_view():
    for name, preset in PRESETS.items():
        spec = preset.spec(AlternativesSpec)
        assert spec.view in alt.VIEWS and preset.notice, name


def test_snippet_follows_the_view():
    spec = AlternativesSpec(groups=2)
    assert "N, C, H, W, G = 4, 8, 2, 2, 2" in lesson.pytorch_snippet(spec)
    assert "gather each worker's mean and biased var" in lesson.pytorch_snippet(spec.replace(view="sync-bn"))


def test_axes_snippet_runs_and_agrees_with_torch(capsys):
    exec(compile(lesson.pytorch_snippet(AlternativesSpec()), "snippet", "exec"), {})
    out = capsys.readouterr().out
    assert "GroupNorm by hand == F.group_norm: True" in out and "G=1 is LayerNorm: True" in out
    assert "G=C is InstanceNorm: True" in out


def test_cli_writes_the_axes_json(tmp_path):
    path = tmp_path / "axes.json"
    assert main(["alternatives", "--view", "axes", "--groups", "1", "--samples", "3", "--json", str(path)]) == 0
    out = json.loads(path.read_text())
    assert out["groups_used"] == 1 and out["shape"] == [3, 8, 4]
    assert out["group"]["mean"] == pytest.approx(out["layer"]["mean"])
    assert out["batch"]["n_sets"] == 8 and out["instance"]["values_per_set"] == 4


def test_cli_runs_the_training_views_and_writes_json(tmp_path):
    zoo, sync = tmp_path / "zoo.json", tmp_path / "sync.json"
    assert (
        main(
            [
                "alternatives",
                "--view",
                "every-norm",
                "--model",
                "mlp",
                "--steps",
                "10",
                "--seeds",
                "2",
                "--json",
                str(zoo),
            ]
        )
        == 0
    )
    out = json.loads(zoo.read_text())
    assert [row["norm"] for row in out["table"]] == [
        "no norm",
        "BatchNorm",
        "LayerNorm",
        "GroupNorm",
        "Batch Renorm",
        "RMSNorm",
    ]
    assert out["seeds"] == 2 and "test accuracy, lowest seed" in out["table"][0]
    assert (
        main(
            [
                "alternatives",
                "--view",
                "sync-bn",
                "--model",
                "mlp",
                "--sub-batches",
                "1,2",
                "--workers",
                "4",
                "--steps",
                "10",
                "--json",
                str(sync),
            ]
        )
        == 0
    )
    out = json.loads(sync.read_text())  # the refused run is null, not NaN (which is not JSON)
    assert out["local"]["test_acc"][0] is None and out["sync"]["test_acc"][0] is not None
    assert "Expected more than 1 value per channel" in out["notes"]["local b=1"]


@pytest.mark.parametrize(
    "argv",
    [
        ["alternatives", "--view", "axes", "--groups", "0"],
        ["alternatives", "--view", "axes", "--side", "two"],
        ["alternatives", "--view", "every-norm", "--model", "resnet"],
        ["alternatives", "--view", "every-norm", "--batch-size", "1"],
        ["alternatives", "--view", "cost", "--cost-batch-sizes", "a,b"],
        ["alternatives", "--view", "sync-bn", "--workers", "0"],
        ["alternatives", "--view", "sync-bn", "--sub-batches", "2,2"],
        ["alternatives", "--view", "rnn", "--steps", "-3"],
        ["alternatives", "--view", "rnn", "--no-such-flag", "1"],
    ],
)
def test_cli_bad_flags_exit_2_with_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


@pytest.mark.parametrize(
    "query",
    [
        {"view": "axes", "groups": "1"},
        {"view": "every-norm", "model": "mlp", "steps": "10"},
        {"view": "cost", "model": "mlp", "cost_batch_sizes": "8"},
        {"view": "sync-bn", "model": "mlp", "sub_batches": "1,2", "steps": "10"},
        {"view": "rnn", "steps": "10"},
    ],
)
def test_page_views_run(query):
    at = AppTest.from_file(str(ROOT / "pages" / "alternatives.py"), default_timeout=240)
    at.query_params.update(query)
    run_to_final(at)
    assert not at.exception, [e.value for e in at.exception]
    warnings = [str(w.value) for w in at.warning if not str(w.value).startswith("This computer was busy")]
    if query["view"] == "sync-bn":  # the per-worker BatchNorm1d with b=1 is refused, and the page says so
        assert len(warnings) == 1 and "Expected more than 1 value per channel" in warnings[0]
    else:
        assert not warnings
    assert len(at.get("plotly_chart")) >= {"axes": 2, "rnn": 3}.get(query["view"], 1)


def test_axes_cube_reads_without_explanation():
    from normviz.figures.alternatives import axes_cube, tensor_sets

    r = final(alt.run(AxesSpec(groups=2)))
    fig = axes_cube(r)
    for name in ("scene", "scene2", "scene3", "scene4"):
        scene = fig.layout[name]
        assert (scene.xaxis.title.text, scene.yaxis.title.text, scene.zaxis.title.text) == (
            "C (channels)",
            "N (batch)",
            "H,W (spatial)",
        )
    titles = [a.text for a in fig.layout.annotations]
    assert [t.split("</b>")[0] for t in titles] == [
        "<b>BatchNorm",
        "<b>LayerNorm",
        "<b>InstanceNorm",
        "<b>GroupNorm (G = 2)",
        "<b>RMSNorm",
    ]
    shaded = {t.scene: t for t in fig.data if t.type == "mesh3d"}
    # the shaded block of one mean/var: BN one channel x all samples, GN one sample x C/G channels
    assert (min(shaded["scene"].x), max(shaded["scene"].x), max(shaded["scene"].y)) == (0, 1, 4)
    assert (max(shaded["scene4"].x), max(shaded["scene4"].y), max(shaded["scene4"].z)) == (4, 1, 4)
    assert len(tensor_sets(r, "group").layout.shapes) == 2 * 4 * 2  # a box per set, in both panels
