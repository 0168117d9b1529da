"""Figures of finished results are built once (normviz/figures/memo.py)."""

import dataclasses
import gc
import weakref

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


def test_a_live_snapshot_is_shared_and_an_equal_but_different_result_is_built_afresh():
    memo.clear()
    result = _result()
    live = dataclasses.replace(result, done=False)
    assert figs.training_curves(live, 14) is figs.training_curves(live, 14)  # every follower's frame shares it
    newer = dataclasses.replace(live)  # the next partial result: another object
    assert figs.training_curves(newer, 14) is not figs.training_curves(live, 14)
    fig = figs.training_curves(result, 14)
    again = _result()  # the same numbers in another object: keyed by identity, never by a reused id
    assert figs.training_curves(again, 14) is not fig
    assert figs.training_curves(again, 14).to_json() == fig.to_json()


def test_the_cache_is_bounded_in_bytes(monkeypatch):
    memo.clear()
    result = _result()
    one = memo.figure_bytes(figs.training_curves(result, 10))
    monkeypatch.setattr(memo, "MAX_BYTES", 5 * one)  # room for about five such figures
    first = figs.training_curves(result, 10.0)
    for size in range(12):
        figs.training_curves(result, 11 + size / 10)
        assert memo.held_bytes() <= memo.MAX_BYTES
    assert figs.training_curves(result, 10.0) is not first  # the oldest went first
    assert 3 <= len(memo._figures) <= 6


def test_the_memo_does_not_keep_a_result_alive():
    memo.clear()
    result = _result()
    figs.training_curves(result, 14)
    gone = weakref.ref(result)
    del result
    gc.collect()
    assert gone() is None  # the store evicted it and no session draws it: freed, figures and all
    figs.training_curves(_result(), 14)  # the next use drops the freed result's figures
    assert len(memo._figures) == 1
