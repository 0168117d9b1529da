"""The home page's tour: every lesson is a link that opens its view with the preset applied."""

from pathlib import Path
from urllib.parse import parse_qs

import torch
from malformed_queries import names_key
from streamlit.testing.v1 import AppTest

from normviz.experiments import activations as act
from normviz.lessons.activations import PRESETS
from normviz.lessons.tour import TOUR
from normviz.runs import STORE, final

torch.set_num_threads(1)
APP = str(Path(__file__).resolve().parents[1] / "app.py")


def test_home_links_every_tour_stop_to_its_page_and_preset():
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    links = [(link.proto.page, parse_qs(link.proto.query_string)) for link in at.get("page_link")]
    wanted = [(s.view, {"preset": [stop.preset]}) for s in TOUR for stop in s.stops]
    assert [(page.replace("-", "_"), q) for page, q in links] == wanted
    assert sum(s.minutes for s in TOUR) <= 25  # a 20-minute lecture, give or take


def _open(at, preset):
    at.query_params.clear()
    at.query_params["preset"] = preset
    return at.switch_page("pages/activations.py").run()


def test_a_preset_link_applies_its_preset_on_every_visit():
    names = ["He init + ReLU", "sigmoid, std=1: saturation"]
    for name in names:  # cached results: the page draws at once
        spec = PRESETS[name].spec(act.ActivationsSpec)
        STORE.put(spec.key(), final(act.run(spec)))
    at = AppTest.from_file(APP, default_timeout=120).run()
    for name in names:  # the second link must win although the page has run before in this session
        _open(at, name)
        assert not at.exception
        assert at.session_state["activations.preset"] == name
        spec = PRESETS[name].spec(act.ActivationsSpec)
        assert (at.session_state["activations.activation"], at.session_state["activations.init"]) == (
            spec.activation,
            spec.init,
        )
        assert any(PRESETS[name].notice[:40] in box.value for box in at.info)
        assert "preset" not in at.query_params  # applied once; the URL now carries the settings


def test_parameters_in_a_link_to_home_are_named_and_dropped():
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["seed"] = "abc"
    at.query_params["zz"] = ["1", "2"]
    at.run()
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert names_key(warnings, "seed") and names_key(warnings, "zz")
    assert all("no settings" in w for w in warnings) and len(warnings) == 2
    assert dict(at.query_params) == {}
    at.run()  # the next run has nothing left to complain about
    assert not at.warning
