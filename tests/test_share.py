"""The link a class opens: NORMVIZ_PUBLIC_URL replaces the host the teacher's browser used, and the home page
shows it with a QR code."""

import pytest

from normviz import ui


@pytest.mark.parametrize(
    "public, url, expected",
    [
        ("", "http://localhost:8501/activations", "http://localhost:8501/activations"),
        ("https://class.example.org", "http://localhost:8501/activations", "https://class.example.org/activations"),
        ("https://class.example.org/", "http://127.0.0.1:8501/", "https://class.example.org/"),
        ("class.example.org", "http://localhost:8501/by_hand", "http://localhost:8501/by_hand"),  # not an address
        ("javascript:alert(1)", "http://localhost:8501/", "http://localhost:8501/"),
    ],
)
def test_the_public_url_replaces_scheme_and_host_and_keeps_the_page(monkeypatch, public, url, expected):
    monkeypatch.setenv("NORMVIZ_PUBLIC_URL", public)
    assert ui.public_url(url) == expected
    assert (ui.public_url_problem() is None) == (public == "" or public.startswith("https://"))


def test_a_qr_code_is_a_png_that_grows_with_its_text():
    short, long = ui.qr_png("https://a.org/"), ui.qr_png("https://class.example.org/" + "x" * 200)
    assert short[:8] == long[:8] == b"\x89PNG\r\n\x1a\n"
    width = lambda png: int.from_bytes(png[16:20], "big")  # noqa: E731 (the IHDR chunk)
    assert width(long) > width(short)


def _home():
    import streamlit as st

    from normviz import ui

    ui.share("http://localhost:8501/", "this app")
    st.write("done")


@pytest.mark.parametrize("public", ["https://class.example.org", "not a url"])
def test_the_share_box_shows_the_public_link_and_its_qr_code(monkeypatch, public):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("NORMVIZ_PUBLIC_URL", public)
    at = AppTest.from_function(_home, default_timeout=30).run()
    assert not at.exception
    assert len(at.get("image")) == 1
    if public.startswith("https"):
        assert at.code[0].value == "https://class.example.org/" and not at.warning
    else:
        assert at.code[0].value == "http://localhost:8501/"
        assert "NORMVIZ_PUBLIC_URL" in at.warning[0].value and "not a url" in at.warning[0].value
