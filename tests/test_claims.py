"""Every number a teaching text states is a setting of its preset, or a claim that a named test asserts.

Teaching texts, all in normviz/lessons (one module per view): every preset's notice, every tour section and stop,
and every text constant. A number passes when it is
- 0 or 1 in prose, or 0, 1 or 2 in a formula: the normalised mean and variance, ±1, a count of one, a square;
- a value of the preset's settings (for a notice or a tour stop), e.g. "batch size 64" in a preset with batch 64;
- listed in CLAIMS under its text, with the test that asserts it (a run of the preset, arithmetic or the code).
Texts built from a run's result (the lessons' notice functions, explain(), long_note()) format their numbers
from the result; their own tests check them. A new hand-typed number fails test_every_number_is_a_setting_or_a_claim
until it is formatted from the run or a test asserts it and names it here.
"""

from __future__ import annotations

import ast
import importlib
import math
import pkgutil
import re
from pathlib import Path

import pytest

import normviz.experiments
import normviz.lessons
from normviz import views
from normviz.lessons.tour import TOUR

ROOT = Path(__file__).resolve().parents[1]
TEXT_NAMES = ("NOTICE", "CAPTIONS", "WHAT_TO_NOTICE", "WHY_UNBIASED", "RENORM_VS_PAPER", "FORMULAS")  # none outside
NUMBER = re.compile(r"(?<![\w.])[-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e[-−]?\d+)?%?")
FREE = {"prose": {"0", "1"}, "formula": {"0", "1", "2"}}

# (lesson module, text) -> {number as written: the test that asserts it}. The text is a preset's name,
# "tour:<preset>", "tour-section:<title>", or a text constant ("NOTICE:sync-bn" for a key of a dict of texts).
CLAIMS: dict[tuple[str, str], dict[str, str]] = {
    ("lessons.activations", "tiny init, no BN: activations collapse"): {
        "14": "test_claims.py::test_activations_tiny_init_numbers",
        "100": "test_claims.py::test_activations_tiny_init_numbers",
        "3": "test_claims.py::test_activations_tiny_init_numbers",
        "10%": "test_claims.py::test_activations_tiny_init_numbers",
    },
    ("lessons.activations", "sigmoid, std=1: saturation"): {
        "6": "test_claims.py::test_activations_sigmoid_numbers",
        "7": "test_claims.py::test_activations_sigmoid_numbers",
        "60%": "test_claims.py::test_activations_sigmoid_numbers",
        "0.03": "test_claims.py::test_activations_sigmoid_numbers",
        "0.97": "test_claims.py::test_activations_sigmoid_numbers",
    },
    ("lessons.by_hand", "EDGE_CASES"): {"2": "test_by_hand.py::test_b2_gives_plus_minus_one"},
    ("lessons.activations", "WHAT_TO_NOTICE"): {"0.01": "test_claims.py::test_activations_tiny_init_numbers"},
    ("lessons.activations", "He init + ReLU"): {"2": "test_claims.py::test_he_init_std_is_root_2_over_fan_in"},
    ("lessons.init_sweep", "the DLfS 16-scale grid"): {
        n: "test_init_sweep.py::test_the_grid_presets_notice"
        for n in ("0.3", "1e-3", "0.29", "0.16", "12%", "5e-8", "1e-4", "1e-6")
    },
    ("lessons.running_stats", "Are PyTorch 0.1 and Keras 0.99 the same thing?"): {
        "0.01": "test_claims.py::test_keras_momentum_arithmetic",
        "100": "test_running_stats.py::test_keras_run_equals_the_pytorch_run_of_the_translated_momenta",
    },
    ("lessons.why_bn", "BN widens the usable learning rates"): {
        "90%": "test_claims.py::test_lr_range_threshold_is_the_codes"
    },
    ("lessons.running_stats", "frozen network: only noise"): {
        "2": "test_claims.py::test_ema_noise_floor_is_root_m_over_2",
    },
    ("lessons.running_stats", "tiny momentum lags"): {
        "1,000": "test_claims.py::test_keras_momentum_arithmetic",
        "7": "test_running_stats.py::test_training_network_shows_the_lag_of_a_tiny_momentum",
        "12": "test_running_stats.py::test_training_network_shows_the_lag_of_a_tiny_momentum",
    },
    ("lessons.running_stats", "running var starts at 1"): {
        "67%": "test_claims.py::test_start_value_left_after_400_steps",
    },
    ("lessons.running_stats", "PreciseBN fixes it"): {
        "5": "test_running_stats.py::test_precise_bn_recalibration_fixes_eval_accuracy",
    },
    ("lessons.running_stats", "WHY_UNBIASED"): {
        "3": "test_claims.py::test_names_with_numbers",
        "1.6%": "test_claims.py::test_bessel_arithmetic",
        "64": "test_claims.py::test_bessel_arithmetic",
        "50%": "test_claims.py::test_bessel_arithmetic",
        "2": "test_claims.py::test_bessel_arithmetic",
    },
    ("lessons.by_hand", "a constant feature"): {
        "3": "test_by_hand.py::test_presets_show_what_they_say",
        "316": "test_by_hand.py::test_presets_show_what_they_say",
        "6": "test_claims.py::test_by_hand_step_numbers",
    },
    ("lessons.by_hand", "huge ε"): {
        "10": "test_by_hand.py::test_presets_show_what_they_say",
        "2": "test_claims.py::test_by_hand_step_numbers",
    },
    ("lessons.by_hand", "Keras defaults (momentum 0.99, biased var)"): {
        "0.01": "test_claims.py::test_keras_momentum_arithmetic",
        "1%": "test_claims.py::test_keras_momentum_arithmetic",
        "1e-3": "test_by_hand.py::test_presets_show_what_they_say",
    },
    ("lessons.train_vs_inference", "batch size 1 in train mode"): {
        n: "test_claims.py::test_cnn_bn_positions_per_channel" for n in ("8", "64", "4", "16", "2")
    },
    ("lessons.train_vs_inference", "forgot model.eval()"): {
        "20%": "test_inference.py::test_forgot_eval_numbers_of_the_preset_tour_and_notice",
        "10%": "test_claims.py::test_chance_is_one_in_ten_classes",
    },
    ("lessons.train_vs_inference", "small batches: BN vs GroupNorm"): {},
    ("lessons.alternatives", "One sample per worker"): {},
    ("lessons.alternatives", "Batch of 2: BatchNorm breaks, LayerNorm and GroupNorm do not"): {
        "64": "test_claims.py::test_cnn_bn_positions_per_channel",
        "16": "test_claims.py::test_cnn_bn_positions_per_channel",
    },
    ("lessons.alternatives", "RNN: per-step BatchNorm vs LayerNorm"): {
        "7": "test_claims.py::test_rnn_steps_and_the_reuse_claim",
        "8": "test_claims.py::test_rnn_steps_and_the_reuse_claim",
    },
    ("lessons.alternatives", "NOTICE:every-norm"): {
        "2": "test_norm_zoo.py::test_batch_norm_over_two_samples_outputs_plus_or_minus_one"
    },
    ("lessons.alternatives", "NOTICE:rnn"): {
        "7": "test_claims.py::test_rnn_steps_and_the_reuse_claim",
        "8": "test_claims.py::test_rnn_steps_and_the_reuse_claim",
    },
    ("lessons.running_stats", "FORMULAS"): {"0.9": "test_claims.py::test_ramp_formula_is_formatted_from_the_code"},
    ("lessons.train_vs_inference", "FORMULAS"): {"32": "test_batch_size.py::test_cli_json_shape"},  # lr x B/32
    ("lessons.alternatives", "CAPTIONS:cost"): {"12": "test_claims.py::test_cost_rounds"},
    ("lessons.alternatives", "CAPTIONS:rnn"): {"8": "test_claims.py::test_rnn_steps_and_the_reuse_claim"},
    ("lessons.alternatives", "CAPTIONS:rnn-long"): {
        n: "test_claims.py::test_rnn_steps_and_the_reuse_claim" for n in ("2", "3", "24", "7")
    },
    ("lessons.alternatives", "CAPTIONS:rnn-stats"): {"0.1": "test_claims.py::test_rnn_bn_momentum"},
    ("lessons.alternatives", "CAPTIONS:every-norm"): {
        "449": "test_claims.py::test_every_norm_caption_numbers",
        "0.1": "test_claims.py::test_every_norm_caption_numbers",
        "2017": "test_claims.py::test_citations_name_their_papers",
        "1702.03275": "test_claims.py::test_citations_name_their_papers",
    },
    ("lessons.alternatives", "RENORM_VS_PAPER"): {
        n: "test_claims.py::test_citations_name_their_papers" for n in ("2017", "1702.03275")
    },
    ("lessons.alternatives", "GITMAN_2017"): {
        n: "test_claims.py::test_citations_name_their_papers" for n in ("2017", "1709.08145")
    },
    ("lessons.alternatives", "JUNG_2018"): {
        n: "test_claims.py::test_citations_name_their_papers" for n in ("2018", "1807.01702")
    },
    ("lessons.init_sweep", "tour-section:BN makes the init scale matter less"): {
        "6": "test_claims.py::test_tour_section_numbers",
        "16": "test_claims.py::test_tour_section_numbers",
        "32": "test_claims.py::test_tour_section_numbers",
    },
    ("lessons.activations", "tour-section:Why normalise: activations layer by layer"): {
        "5": "test_claims.py::test_tour_section_numbers",
    },
    ("lessons.activations", "tour:tiny init, no BN: activations collapse"): {
        "5": "test_claims.py::test_tour_section_numbers",
        "10%": "test_claims.py::test_activations_tiny_init_numbers",
    },
    ("lessons.running_stats", "tour:Are PyTorch 0.1 and Keras 0.99 the same thing?"): {
        "0.01": "test_claims.py::test_keras_momentum_arithmetic",
    },
    ("lessons.train_vs_inference", "tour:forgot model.eval()"): {
        "20%": "test_inference.py::test_forgot_eval_numbers_of_the_preset_tour_and_notice",
        "10%": "test_claims.py::test_chance_is_one_in_ten_classes",
    },
    ("lessons.train_vs_inference", "tour:small batches: BN vs GroupNorm"): {},
}


# --- collecting the texts ----------------------------------------------------------------------------------


def _modules() -> dict[str, object]:
    """normviz.lessons' modules by name ("lessons.<view>")."""
    names = [f"lessons.{m.name}" for m in pkgutil.iter_modules(normviz.lessons.__path__)]
    return {n: importlib.import_module(f"normviz.{n}") for n in sorted(names)}


def _text_names(module) -> list[str]:
    """A lesson's text constants: its upper-case strings, lists and dicts of them (PRESETS are walked apart)."""
    return [n for n, v in vars(module).items() if n.isupper() and n != "PRESETS" and _is_text(v)]


def _is_text(value) -> bool:
    """A string, or a list or dict of them (a dict's values may be lists): not a table of settings."""
    if isinstance(value, dict):
        return all(_is_text(v) for v in value.values())
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def _settings(name: str, changes: dict) -> set[float]:
    """The numeric values of a preset's spec (its changes on top of the view's page spec's defaults)."""
    values = dict(views.view(name.removeprefix("lessons.")).spec_cls().to_dict()) | changes
    out = set()
    for v in values.values():
        for x in v if isinstance(v, (list, tuple)) else [v]:
            if isinstance(x, (int, float)) and not isinstance(x, bool):
                out.add(float(x))
    return out


def texts() -> list[tuple[str, str, str, str, set[float]]]:
    """(module, key, kind, text, settings) for every teaching text."""
    out, modules = [], _modules()
    for name, module in modules.items():
        for preset, p in getattr(module, "PRESETS", {}).items():
            out.append((name, preset, "prose", p.notice, _settings(name, p.changes)))
        for const in _text_names(module):
            value = getattr(module, const)
            kind = "formula" if const == "FORMULAS" else "prose"
            items = value.items() if isinstance(value, dict) else [(None, value)]
            for key, text in items:
                text = " ".join(text) if isinstance(text, list) else text
                out.append((name, const if key is None else f"{const}:{key}", kind, text, set()))
    for section in TOUR:
        name = f"lessons.{section.view}"
        out.append((name, f"tour-section:{section.title}", "prose", section.teaches, set()))
        for stop in section.stops:
            changes = modules[name].PRESETS[stop.preset].changes
            out.append((name, f"tour:{stop.preset}", "prose", stop.ask, _settings(name, changes)))
    return out


def _value(token: str) -> float:
    return float(token.replace("−", "-").replace(",", "").rstrip("%"))


def unexplained(module: str, key: str, kind: str, text: str, settings: set[float]) -> list[str]:
    claims = CLAIMS.get((module, key), {})
    found = []
    for token in NUMBER.findall(text):
        plain = token.replace("−", "-").lstrip("-")
        if plain in FREE[kind] or plain in claims or token in claims:
            continue
        if not token.endswith("%") and any(math.isclose(_value(token), s, rel_tol=1e-9) for s in settings):
            continue
        if not token.endswith("%") and any(math.isclose(-_value(token), s, rel_tol=1e-9) for s in settings):
            continue
        found.append(token)
    return found


TEXTS = texts()


def test_the_walk_finds_every_preset_and_tour_stop():
    keys = {(m, k) for m, k, *_ in TEXTS}
    for section in TOUR:
        assert (f"lessons.{section.view}", f"tour:{section.stops[0].preset}") in keys
    presets = {(f"lessons.{v.name}", name) for v in views.VIEWS for name in v.presets}
    assert len(presets) >= 20 and presets <= keys
    lesson = "lessons.train_vs_inference"
    assert (lesson, "CAPTIONS:tvi-modes") in keys and (lesson, "INTRO") in keys


def test_the_experiments_hold_no_teaching_texts():
    """Presets, snippets and prose live in normviz/lessons; an experiment module has its Spec, Result and run."""
    for info in pkgutil.iter_modules(normviz.experiments.__path__):
        module = importlib.import_module(f"normviz.experiments.{info.name}")
        assert not {"PRESETS", "pytorch_snippet", *TEXT_NAMES} & set(vars(module)), info.name


def test_every_number_is_a_setting_or_a_claim():
    missing = {}
    for module, key, kind, text, settings in TEXTS:
        bad = unexplained(module, key, kind, text, settings)
        if bad:
            missing[(module, key)] = bad
    assert not missing, (
        "hand-typed numbers in teaching texts; format them from the run, or assert them in a test and list "
        f"them in tests/test_claims.py CLAIMS: {missing}"
    )


def test_every_claim_names_a_test_that_exists_and_a_number_the_text_states():
    by_key = {(m, k): text for m, k, _, text, _ in TEXTS}
    for (module, key), claims in CLAIMS.items():
        assert (module, key) in by_key, f"no teaching text {(module, key)}"
        tokens = {t.replace("−", "-").lstrip("-") for t in NUMBER.findall(by_key[(module, key)])}
        for number, test in claims.items():
            assert number in tokens, f"{(module, key)} no longer states {number}: drop it from CLAIMS"
            path, name = test.split("::")
            tree = ast.parse((ROOT / "tests" / path).read_text())
            assert name in {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}, test


def test_the_check_catches_a_hand_typed_number():
    assert unexplained(
        "lessons.running_stats", "frozen network: only noise", "prose", "about 37% of the time", set()
    ) == ["37%"]
    assert unexplained("x", "y", "prose", "batch 64 and lr 0.05", {64.0, 0.05}) == []
    assert unexplained("x", "y", "formula", r"\tfrac{1}{2}\sigma^2 + 0.9", set()) == ["0.9"]


# --- the claims that no other test file asserts --------------------------------------------------------------


def test_activations_tiny_init_numbers():
    """'shrinks ... about 14-fold (0.01·√100·√½)', 'by layer 3 ... a spike at 0', 'chance (about 10%)'."""
    from normviz.experiments.activations import ActivationsSpec, run
    from normviz.lessons.activations import PRESETS
    from normviz.runs import final

    spec = PRESETS["tiny init, no BN: activations collapse"].spec(ActivationsSpec)
    assert spec.width == 100 and spec.init_std == 0.01
    assert 1 / (0.01 * math.sqrt(100) * math.sqrt(0.5)) == pytest.approx(14, rel=0.02)
    r = final(run(spec))
    plain, bn = r.models.index("no BN"), r.models.index("BN")
    std = r.snapshots["std"][0, plain]  # (layers,) at step 0
    assert all(12 < std[i] / std[i + 1] < 16 for i in range(3))
    assert std[2] < 1e-3
    assert abs(r.snapshots["test_acc"][-1, plain] - 0.1) < 0.03 and r.snapshots["test_acc"][-1, bn] > 0.9


def test_activations_sigmoid_numbers():
    """'inputs of std 6-7', 'about 60% ... below 0.03 or above 0.97', 'almost nothing saturates', 'learns faster'."""
    from normviz.experiments.activations import ActivationsSpec, run
    from normviz.lessons.activations import PRESETS, pytorch_snippet
    from normviz.runs import final

    spec = PRESETS["sigmoid, std=1: saturation"].spec(ActivationsSpec)
    r = final(run(spec))
    plain, bn = r.models.index("no BN"), r.models.index("BN")
    counts, edges = r.snapshots["hist_linear"][0, plain], r.edges["linear"]  # pre-activations at step 0
    for layer, (c, e) in enumerate(zip(counts, edges)):
        centres = (e[:-1] + e[1:]) / 2
        mean = (c * centres).sum() / c.sum()
        assert 5.5 < math.sqrt((c * (centres - mean) ** 2).sum() / c.sum()) < 7.5, layer
    saturated = r.snapshots["saturated"][0]
    assert 0.55 < saturated[plain].mean() < 0.65 and saturated[bn].max() < 0.01
    assert "(a < 0.03) | (a > 0.97)" in pytorch_snippet(spec)  # the thresholds the app measures with
    assert r.snapshots["test_acc"][-1, bn] > r.snapshots["test_acc"][-1, plain]


def test_he_init_std_is_root_2_over_fan_in():
    from normviz.stacked import init_std

    assert init_std("he", 50, 0.0) == pytest.approx(math.sqrt(2 / 50))


def test_keras_momentum_arithmetic():
    from normviz.experiments.running_stats import effective_window, translate

    assert translate((0.99, 0.9, 0.1), "keras") == pytest.approx((0.01, 0.1, 0.9))
    assert effective_window(0.001) == pytest.approx(1000)


def test_lr_range_threshold_is_the_codes():
    """The notice's dotted line is the threshold the experiment counts a rate as "trains" by."""
    from normviz.experiments import why_lr_range
    from normviz.lessons.why_bn import PRESETS

    assert f"{why_lr_range.TRAINS_AT:.0%}" == "90%"
    assert "90%" in PRESETS["BN widens the usable learning rates"].notice


def test_ema_noise_floor_is_root_m_over_2():
    """An EMA of independent values with weight m has m / (2 - m) of their variance: std about sqrt(m/2)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    for m in (0.01, 0.1, 0.5):
        ema = torch.zeros(4000, dtype=torch.float64)
        for _ in range(2000):
            ema = (1 - m) * ema + m * torch.randn(4000, generator=gen, dtype=torch.float64)
        assert ema.std().item() == pytest.approx(math.sqrt(m / (2 - m)), rel=0.05)
        assert math.sqrt(m / (2 - m)) == pytest.approx(math.sqrt(m / 2), rel=0.3)


def test_start_value_left_after_400_steps():
    from normviz.experiments.running_stats import RunningStatsSpec, start_value_left
    from normviz.lessons.running_stats import PRESETS

    spec = PRESETS["running var starts at 1"].spec(RunningStatsSpec)
    assert spec.steps == 400 and spec.pytorch_momenta[0] == 0.001
    assert f"{start_value_left(spec)[0]:.0%}" == "67%"


def test_bessel_arithmetic():
    assert f"{1 - 63 / 64:.1%}" == "1.6%" and f"{1 - 1 / 2:.0%}" == "50%"  # (n - 1)/n at batch 64 and 2


def test_names_with_numbers():
    """Version names, not measurements: Keras 3."""
    from normviz.lessons.running_stats import WHY_UNBIASED

    assert "Keras 3," in WHY_UNBIASED


def test_ramp_formula_is_formatted_from_the_code():
    from normviz.experiments.running_stats import RAMP_END, schedule_momenta
    from normviz.lessons.running_stats import FORMULAS

    assert f"1 - {1 - RAMP_END:g}" in FORMULAS[4]
    assert schedule_momenta((0.1,), 11, 11, "ramp") == pytest.approx((0.1 * RAMP_END,))


def test_every_norm_caption_numbers():
    from normviz.experiments.norm_zoo import RENORM_KWARGS, digits
    from normviz.lessons.alternatives import CAPTIONS

    assert f"({len(digits(0).x_test)} held-out digits)" in CAPTIONS["every-norm"]
    assert f"PyTorch momentum {RENORM_KWARGS['momentum']:g})" in CAPTIONS["every-norm"]


def test_by_hand_step_numbers():
    from normviz.experiments import by_hand as bh
    from normviz.lessons import by_hand as lesson
    from normviz.runs import final

    r = final(bh.run(bh.ByHandSpec()))
    assert lesson.steps(r)[1].title.startswith("2. Normalise") and lesson.backward_step(r).title.startswith(
        "6. Backward"
    )


def test_chance_is_one_in_ten_classes():
    from normviz.experiments.norm_zoo import digits

    assert len(set(digits(0).y_train.tolist())) == 10


def test_cnn_bn_positions_per_channel():
    """The CNN's BN layers see 8x8 = 64 positions per channel, then 4x4 = 16 after the stride-2 conv."""
    import torch

    from normviz.experiments.norm_zoo import build
    from normviz.layers import BatchNorm

    model = build("cnn", "batch", 4, seed=0)
    seen = []
    for m in model.modules():
        if isinstance(m, BatchNorm):
            m.register_forward_pre_hook(lambda mod, args: seen.append(tuple(args[0].shape[2:])))
    model(torch.randn(2, 64))
    assert seen == [(8, 8), (4, 4)]


def test_rnn_steps_and_the_reuse_claim():
    """8 training steps (0-7), test sequences of 8/16/24, and the preset's 'reusing step 7's costs little'."""
    from normviz.experiments import rnn_norms
    from normviz.experiments.alternatives import AlternativesSpec
    from normviz.lessons.alternatives import PRESETS, long_note
    from normviz.runs import final

    assert rnn_norms.TRAIN_STEPS == 8 and rnn_norms.REPEATS == (1, 2, 3)
    spec = PRESETS["RNN: per-step BatchNorm vs LayerNorm"].spec(AlternativesSpec).sub()
    r = final(rnn_norms.run(spec))
    assert "costs little" in long_note(r)
    assert len(r.bn_mean) == 8 and "Expected" not in r.refusal and r.refusal  # refuses step 8 on its own terms


def test_rnn_bn_momentum():
    from normviz.layers import BatchNorm
    from normviz.models import RowRNN

    bns = [m for m in RowRNN(norm="batch").modules() if isinstance(m, BatchNorm)]
    assert bns and all(b.stats.momenta == (0.1,) for b in bns)


def test_cost_rounds():
    from normviz.experiments import norm_cost
    from normviz.lessons.alternatives import CAPTIONS

    assert norm_cost.ROUNDS == 12 and "Fastest of 12 interleaved rounds" in CAPTIONS["cost"]


def test_citations_name_their_papers():
    from normviz.lessons.alternatives import GITMAN_2017, JUNG_2018, RENORM_VS_PAPER

    assert "Ioffe (2017, arXiv 1702.03275)" in RENORM_VS_PAPER
    assert GITMAN_2017 == "Gitman & Ginsburg (2017, arXiv 1709.08145)"
    assert JUNG_2018 == "Jung et al. (2018, arXiv 1807.01702)"


def test_tour_section_numbers():
    from normviz.experiments.activations import ActivationsSpec
    from normviz.experiments.init_sweep import InitSweepSpec

    assert ActivationsSpec().depth == 5
    assert InitSweepSpec().scales == 16  # 16 scales x (BN, no BN) = 32 networks; DLfS chapter 6
