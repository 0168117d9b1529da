"""What a view draws from one run's result, as data: `normviz/lessons/<view>.py` builds the panels, the pages
draw them with normviz.ui and the offline report writes their charts and words into HTML."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go


@dataclass(frozen=True)
class Chart:
    key: str  # the chart's id: its downloads' file name, the tour's anchor, the live chart's element
    figure: go.Figure
    caption: str = ""  # Markdown under the chart
    title: str = ""  # a subheading above it
    notice: str = ""  # "What to notice" (Markdown) under the caption


@dataclass(frozen=True)
class Text:
    body: str  # Markdown, except for "code"
    kind: str = "markdown"  # markdown, caption, subheader, info, error, warning, success, code, expander
    title: str = ""  # an expander's label


@dataclass(frozen=True)
class Table:
    rows: list[dict]
    download: str = ""  # the stem of a CSV download's file name; "" for none
    percent: tuple[str, ...] = ()  # columns of shares, shown as percentages


@dataclass(frozen=True)
class Worked:
    """A step worked by hand: its formulas (LaTeX, in general, then with the numbers) beside its tables."""

    title: str
    formula: tuple[str, ...]
    worked: tuple[str, ...]
    tables: tuple[tuple[str, pd.DataFrame], ...]  # (a Markdown label above it or "", the table)
    caption: str = ""
    side_by_side: bool = True  # False: the tables under the formulas, at full width


Panel = Chart | Text | Table | Worked


def percent_columns(rows: list[dict]) -> tuple[str, ...]:
    """The columns of accuracies and shares (values in 0..1)."""
    return tuple(c for c in rows[0] if "accuracy" in c or "share" in c) if rows else ()


def diverged(what: str, step: int, stops: str = "its charts stop there", cause: str = "its loss") -> Text:
    """The one message a diverged run gets."""
    return Text(
        f"The {what} diverged at step {step} ({cause} became NaN or infinite); {stops}. Lower the learning rate.",
        "error",
    )
