"""ui.show_run in AppTest: a run followed live from the run service (threads here), then drawn final;
a finished run drawn at once in another session; a failed run's message and Retry; the browser's cost cap.

The browser side (frames that reach Chromium, the queue notice, a closed tab) is in tests/e2e/test_live_browser.py.
"""

from live_pages import live, run_to_final
from streamlit.testing.v1 import AppTest


def _activations_page():
    import streamlit as st

    from normviz import ui
    from normviz.experiments.activations import ActivationsSpec, run

    def render(result, final: bool):
        st.write(f"step {result.steps_done}, final={final}")

    ui.show_run(ActivationsSpec(steps=30, seed=913), run, render)


def _failing_page():
    import streamlit as st

    from normviz import ui
    from normviz.data import DataError
    from normviz.experiments.activations import ActivationsSpec, run

    def failing(spec):
        yield next(run(spec))
        raise DataError("the data file went away")

    st.session_state["attempts"] = st.session_state.get("attempts", 0) + 1
    ui.show_run(ActivationsSpec(steps=30, seed=914), failing, lambda result, final: st.write("drawn"))


def test_a_run_is_followed_live_then_drawn_final_and_a_second_session_gets_it_at_once():
    first = AppTest.from_function(_activations_page, default_timeout=120).run()
    assert live(first) and not first.exception  # the page script returned while the run trains
    run_to_final(first)
    assert [m.value for m in first.markdown] == ["step 30, final=True"]
    again = AppTest.from_function(_activations_page, default_timeout=120).run()  # another session, one run
    assert not live(again) and [m.value for m in again.markdown] == ["step 30, final=True"]


def test_a_failed_run_says_why_in_one_line_and_retry_submits_it_again():
    at = run_to_final(AppTest.from_function(_failing_page, default_timeout=120))
    assert [e.value for e in at.error] == ["Cannot run with these settings: the data file went away"]
    assert [b.label for b in at.button] == ["Retry"] and not at.exception
    at.button[0].click().run()
    assert live(at) or "went away" in at.error[0].value  # submitted again: training, or failed once more
    run_to_final(at)
    assert [e.value for e in at.error] == ["Cannot run with these settings: the data file went away"]


def test_the_cost_cap_refuses_a_run_in_the_browser_naming_the_setting():
    def page():
        import streamlit as st

        from normviz import ui
        from normviz.experiments.activations import ActivationsSpec, run

        ui.show_run(ActivationsSpec(steps=5000, batch_size=1024), run, lambda result, final: st.write("drawn"))

    at = AppTest.from_function(page, default_timeout=60).run()
    assert not live(at) and not at.markdown and len(at.error) == 1
    assert "lower `steps`" in at.error[0].value and "`batch_size`" in at.error[0].value


def test_step_axes_span_the_whole_run_from_the_first_live_frame():
    from normviz.experiments import running_stats as rs
    from normviz.experiments.activations import ActivationsSpec, run
    from normviz.figures import activations as act_figs
    from normviz.figures import running_stats as rs_figs

    def x_ranges(fig):
        return {tuple(axis.range) for axis in fig.select_xaxes()}

    for spec, experiment, builders in (
        (ActivationsSpec(steps=600, seed=915), run, (act_figs.training_curves, act_figs.layer_stats)),
        (
            rs.RunningStatsSpec(steps=600, seed=915, depth=2, width=16),
            rs.run,
            (lambda r: rs_figs.trajectories(r, 0, 0), rs_figs.errors, rs_figs.accuracy),
        ),
    ):
        results = list(experiment(spec))
        first = next(r for r in results if r.steps_done > 0)  # 600 steps: longer than the 0.25 s throttle
        assert first.steps_done < spec.steps and results[-1].done
        for build in builders:
            assert x_ranges(build(first)) == x_ranges(build(results[-1])) == {(0, spec.steps)}


def test_a_slow_live_frame_lengthens_its_sessions_timer_within_bounds():
    from normviz.ui import LIVE_FRAME_S, MAX_FRAME_S, _frame_interval

    assert _frame_interval(0.01) == LIVE_FRAME_S  # a cheap frame: about four a second
    assert abs(_frame_interval(0.2) - 0.8) < 1e-12  # a frame takes at most a quarter of the server's time
    assert _frame_interval(30.0) == MAX_FRAME_S
