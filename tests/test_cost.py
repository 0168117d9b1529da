"""Cost estimates and the browser's cap: every shipped setting passes, the runaway links of issue 19 are refused
with a message naming the setting to lower, and the CLI runs what the browser refuses. (How close an estimate
is to the measured CPU time is bench/bench_cost.py: timing is not stable enough for a test.)"""

import math

import pytest

from normviz import cli, cost
from normviz.config import SpecError
from normviz.cost import CostError
from normviz.experiments import spec_classes
from normviz.experiments.activations import ActivationsSpec
from normviz.experiments.alternatives import VIEWS, AlternativesSpec
from normviz.experiments.by_hand import ByHandSpec
from normviz.experiments.inference import InferenceSpec, TrainVsInferenceSpec
from normviz.experiments.init_sweep import InitSweepSpec
from normviz.experiments.running_stats import RunningStatsSpec

# the two links of issue 19 ("One URL, tens of CPU-hours"), as the pages parse them
RUNNING_STATS_URL = (
    "width=512&depth=10&batch_size=1024&steps=5000&pop_every=1&recalibrate_batches=1000"
    "&momenta=0.001,0.01,0.05,0.1,0.2,0.3,0.5,0.9&dataset=spirals&n_samples=70000&test_fraction=0.05"
)
INIT_SWEEP_URL = "scales=32&width=512&depth=10&epochs=100&batch_size=1024&dataset=spirals&n_samples=70000"


def from_url(cls, query: str):
    spec, warnings = cls.from_query(dict(pair.split("=") for pair in query.split("&")))
    assert warnings == []
    return spec


def test_every_experiment_has_a_cost_model():
    for name, spec_cls in spec_classes().items():
        seconds = cost.estimate(spec_cls())
        assert math.isfinite(seconds) and seconds > 0, name


def test_every_shipped_default_and_preset_passes_the_cap():
    specs = cost.shipped_specs()
    assert len(specs) > 30  # defaults, every view, every preset
    for spec in specs:
        cost.check_browser(spec)  # raises CostError otherwise
    largest = max(cost.estimate(s) for s in specs)
    assert cost.cap() == pytest.approx(cost.CAP_FACTOR * largest)


@pytest.mark.parametrize(
    "cls, query, command",
    [(RunningStatsSpec, RUNNING_STATS_URL, "running_stats"), (InitSweepSpec, INIT_SWEEP_URL, "init_sweep")],
)
def test_the_runaway_links_of_issue_19_are_refused(cls, query, command):
    spec = from_url(cls, query)
    assert cost.estimate(spec) > 3600  # hours of CPU (the issue measured tens of hours)
    with pytest.raises(CostError) as refused:
        cost.check_browser(spec)
    message = str(refused.value)
    assert isinstance(refused.value, SpecError)
    assert message.startswith("This run would take about ") and " h of CPU " in message
    assert "lower `width` (now 512)" in message or "lower `n_samples` (now 70000)" in message
    assert f"The CLI runs it: `python -m normviz {command} " in message
    assert "--width 512" in message and "--n-samples 70000" in message


def test_the_message_names_the_settings_that_help_most():
    with pytest.raises(CostError, match=r": lower `steps` \(now 5000\) or raise `probe_every` \(now 1\)\. The CLI"):
        cost.check_browser(ActivationsSpec(steps=5000, probe_every=1))
    page = AlternativesSpec(view="rnn", steps=3000, batch_size=512)  # a page's spec: its view's command
    with pytest.raises(CostError, match=r": lower `steps` \(now 3000\) or lower `batch_size` \(now 512\)\.") as refused:
        cost.check_browser(page)
    assert str(refused.value).endswith(
        "The CLI runs it: `python -m normviz alternatives --view rnn --batch-size 512 --steps 3000`"
    )


def test_estimates_grow_with_the_work():
    base = cost.estimate(ActivationsSpec())
    assert cost.estimate(ActivationsSpec(steps=800)) == pytest.approx(2 * base, rel=0.2)
    assert cost.estimate(ActivationsSpec(width=400)) > 3 * base
    assert cost.estimate(ActivationsSpec(probe_every=1)) > 2 * base
    sweep = cost.estimate(InitSweepSpec())
    assert cost.estimate(InitSweepSpec(scales=32)) > 1.5 * sweep
    assert cost.estimate(RunningStatsSpec(momenta=(0.1,), cma=False)) < cost.estimate(RunningStatsSpec())


def test_a_page_spec_costs_its_parts():
    page = TrainVsInferenceSpec()
    assert cost.estimate(page) == pytest.approx(sum(cost.estimate(p) for p in cost.parts(page)))
    assert cost.estimate(page) > cost.estimate(page.project(InferenceSpec))
    for view in VIEWS:
        spec = AlternativesSpec(view=view)
        assert cost.estimate(spec) == cost.estimate(spec.sub())


def test_the_cli_runs_what_the_browser_refuses(monkeypatch, capsys):
    monkeypatch.setattr(cost, "CAP_FACTOR", 1e-6)  # now even one BN step by hand is over the cap
    cost.cap.cache_clear()
    try:
        with pytest.raises(CostError):
            cost.check_browser(ByHandSpec())
        assert cli.main(["by_hand"]) == 0
        assert '"running_var"' in capsys.readouterr().out
    finally:
        cost.cap.cache_clear()


def test_unknown_spec_classes_have_no_estimate():
    from normviz.config import DataSpec

    with pytest.raises(TypeError):
        cost.estimate(DataSpec())
