"""Figures of finished results are built once (normviz/figures/memo.py)."""

import dataclasses

from normviz.experiments import activations
from normviz.figures import activations as figs
from normviz.figures import memo
from normviz.runs import final


def _result():
    return final(activations.run(activations.ActivationsSpec(steps=6, probe_every=3)))


def test_a_finished_result_gives_the_same_figure_and_other_arguments_another():
    memo.clear()
    result = _result()
    fig = figs.layer_histograms(result, "act", 14, animate=True)
    assert figs.layer_histograms(result, "act", 14, animate=True) is fig
    other = figs.layer_histograms(result, "linear", 14, animate=True)
    assert other is not fig and other.to_json() != fig.to_json()
    assert figs.layer_histograms(result, "act", 20, animate=True) is not fig  # font size is part of the key


def test_a_live_snapshot_and_an_equal_but_different_result_are_built_afresh():
    memo.clear()
    result = _result()
    live = dataclasses.replace(result, done=False)
    assert figs.training_curves(live, 14) is not figs.training_curves(live, 14)
    fig = figs.training_curves(result, 14)
    again = _result()  # the same numbers in another object: keyed by identity, never by a reused id
    assert figs.training_curves(again, 14) is not fig
    assert figs.training_curves(again, 14).to_json() == fig.to_json()


def test_the_cache_is_bounded():
    memo.clear()
    result = _result()
    for size in range(memo.MAX_FIGURES + 5):
        figs.training_curves(result, 10 + size / 10)
    assert len(memo._figures) == memo.MAX_FIGURES
