"""Train vs inference: eval mode does not care about the batch, train mode does, and nothing we measure in
train mode leaks into the running statistics eval mode uses."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from normviz.cli import main
from normviz.data import load_checked
from normviz.experiments.inference import (
    SIZES,
    InferenceSpec,
    TrainVsInferenceSpec,
    accuracy_table,
    batch_statistics,
    run,
    torch_bn1d_error,
)
from normviz.lessons.train_vs_inference import PRESETS
from normviz.models import MLP
from normviz.runs import final

TORCH_PHRASE = "Expected more than 1 value per channel when training"


@pytest.fixture(scope="module")
def result():
    torch.set_num_threads(1)
    return final(run(InferenceSpec()))


def at(table, batch):
    return table.train_acc[list(table.sizes).index(batch)]


def test_eval_mode_accuracy_is_the_same_at_every_batch_size(result):
    assert list(result.mlp.sizes) == list(SIZES)
    assert np.ptp(result.mlp.eval_acc) < 1e-9
    assert result.mlp.eval_acc[0] > 0.9


def test_train_mode_is_far_below_eval_at_batch_2_and_close_at_large_batches(result):
    eval_acc = result.mlp.eval_acc[0]
    assert at(result.mlp, 2) < eval_acc - 0.3
    assert abs(at(result.mlp, 256) - eval_acc) < 0.03
    assert np.all(np.diff(result.mlp.train_acc[1:]) > -0.03)  # rises with the batch size (up to noise)


def test_batch_of_one_train_mode_gives_torchs_own_message(result):
    assert result.bn1d_error == torch_bn1d_error(64)
    assert result.bn1d_error.startswith(TORCH_PHRASE) and "torch.Size([1, 64])" in result.bn1d_error
    assert np.isnan(result.mlp.train_acc[0]) and result.mlp.error.startswith(TORCH_PHRASE)


def test_bn2d_accepts_one_image_and_the_cnn_loses_its_accuracy(result):
    alone = result.cnn.train_acc[0]
    assert np.isfinite(alone) and alone < result.cnn.eval_acc[0] - 0.4
    ex = result.cnn_examples
    assert np.mean(ex["p_alone"]) < np.mean(ex["p_eval"]) - 0.3


def test_train_mode_evaluation_leaves_the_running_statistics_alone():
    data = load_checked(InferenceSpec())
    gen = torch.Generator().manual_seed(0)
    mlp = MLP(64, 10, 2, 16, norm="batch", init="he", generator=gen)
    mlp.train()
    for _ in range(5):  # running stats away from their start
        mlp(data.x_train[torch.randint(0, 1000, (32,), generator=gen)])
    before = [b.clone() for b in mlp.buffers()]
    mlp.eval()
    logits = mlp(data.x_test)
    table = accuracy_table(mlp, data.x_test, data.y_test, seed=0)
    assert not np.isnan(table.train_acc[1:]).any()
    assert all(torch.equal(a, b) for a, b in zip(before, mlp.buffers()))
    assert torch.equal(mlp(data.x_test), logits) and not mlp.training
    with batch_statistics(mlp):
        mlp(data.x_test[:8])
    assert all(torch.equal(a, b) for a, b in zip(before, mlp.buffers()))


def test_batch_mates_change_train_mode_answers_only(result):
    m = result.mates
    assert m.spread("eval") < 1e-5
    np.testing.assert_allclose(m.eval, np.broadcast_to(m.alone, m.eval.shape), atol=1e-5)
    assert m.spread("train") > 0.3
    assert m.other_class != m.label and m.train.shape == (len(SIZES) - 1, 3, 10)


def test_forgot_eval_story(result):
    s = result.story
    assert s.eval_correct.mean() == pytest.approx(result.cnn.eval_acc[0], abs=1e-6)
    assert s.forgot_correct.mean() < s.eval_correct.mean() - 0.4
    assert s.mlp_error.startswith(TORCH_PHRASE)


def test_requires_grad_false_does_not_freeze_running_stats_but_eval_does(result):
    f = result.finetune
    assert f.mean_drift[-1, 0] > 0.05 and f.var_drift[-1, 0] > 0.05  # requires_grad=False only
    assert np.all(f.mean_drift[:, 1] == 0) and np.all(f.var_drift[:, 1] == 0)  # .eval() on the BN modules
    assert np.all(f.gamma_change == 0)
    old_camera = f.acc[:, :, 0]
    assert old_camera[-1, 0] < old_camera[-1, 1]  # drifted stats cost the old data accuracy


def test_torch_bn1d_refuses_but_bn2d_normalises_one_image_by_itself():
    x = torch.randn(1, 3, 8, 8)
    y = nn.BatchNorm2d(3, affine=False).train()(x)
    expected = (x - x.mean((0, 2, 3), keepdim=True)) / torch.sqrt(x.var((0, 2, 3), unbiased=False, keepdim=True) + 1e-5)
    torch.testing.assert_close(y, expected)
    assert torch_bn1d_error(5).startswith(TORCH_PHRASE)


# --- presets: each one's key claim, on the result its settings produce ------------------------------------
def preset(name):
    spec = PRESETS[name].spec(TrainVsInferenceSpec)
    assert spec.project(InferenceSpec) == InferenceSpec()  # view settings only: the cached run serves them
    return spec


def test_preset_batch_size_1(result):
    spec = preset("batch size 1 in train mode")
    assert spec.batch_size == 1
    assert np.isnan(result.mlp.train_acc[0]) and result.cnn.train_acc[0] < result.cnn.eval_acc[0] - 0.4


def test_preset_forgot_eval_hides_in_batches_of_64(result):
    spec = preset("forgot model.eval()")
    assert abs(at(result.cnn, spec.batch_size) - result.cnn.eval_acc[0]) < 0.05
    assert result.story.forgot_correct.mean() < 0.3


def test_forgot_eval_numbers_of_the_preset_tour_and_notice(result):
    """'about 20% (chance: 10%)' in the preset and the tour; the notice names test-time adaptation."""
    from normviz.lessons.train_vs_inference import notice_story

    s = result.story
    assert 0.15 < s.forgot_correct.mean() < 0.25
    text = notice_story(result)
    assert f"a later `.eval()` scores {s.eval_after_forgot:.0%}" in text and "test-time adaptation" in text
    word = "above" if s.eval_after_forgot > s.eval_correct.mean() else "below"
    assert f"{word} the {s.eval_correct.mean():.0%} of the correct eval mode" in text


def test_preset_batch_mates(result):
    spec = preset("batch-mates change the answer")
    i = list(result.mates.sizes).index(spec.batch_size)
    p = result.mates.train[i]  # (3 kinds, C)
    assert np.max(p.max(0) - p.min(0)) > 0.3


# --- CLI ---------------------------------------------------------------------------------------------------
def test_cli_json_shape(tmp_path):
    out = tmp_path / "inf.json"
    assert (
        main(
            [
                "train_vs_inference",
                "--part",
                "inference",
                "--seed",
                "1",
                "--train-epochs",
                "3",
                "--finetune-steps",
                "5",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    data = json.loads(out.read_text())
    assert set(data) == {"eval_acc_by_batch", "train_mode_acc_by_batch", "batch_size_1_train_error", "batchmates"}
    assert list(data["eval_acc_by_batch"]) == [str(b) for b in SIZES]
    assert list(data["train_mode_acc_by_batch"]) == [str(b) for b in SIZES[1:]]
    assert data["batch_size_1_train_error"].startswith(TORCH_PHRASE)
    assert set(data["batchmates"]) == {"eval_max_abs_diff", "train_max_abs_diff"}
    assert data["batchmates"]["eval_max_abs_diff"] < 1e-5 < data["batchmates"]["train_max_abs_diff"]


@pytest.mark.parametrize(
    "argv",
    [
        ["inference", "--train-batch", "1"],
        ["inference", "--seed", "-1"],
        ["inference", "--dataset", "moons"],
        ["inference", "--sizes", "2"],
        ["inference", "--lr", "abc"],
    ],
)
def test_cli_bad_flags_exit_2_with_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_the_notice_quotes_the_measured_accuracies(result):
    from normviz.lessons.train_vs_inference import notice_train_vs_eval

    text = notice_train_vs_eval(result, 4)
    mlp = result.mlp
    assert f"{mlp.eval_acc[0]:.0%}, exactly the same at every batch size" in text  # eval mode ignores B
    assert f"{mlp.train_acc[1]:.0%} at batch 2" in text and "At batch 4 (the slider)" in text
