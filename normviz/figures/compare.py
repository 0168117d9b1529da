"""Pin and compare: a pinned run's chart drawn faded over the current one, labelled with the settings that
differ (the compare-two-settings move: batch 32 vs 2, momentum 0.1 vs 0.01, init 0.01 vs 1)."""

from __future__ import annotations

import plotly.graph_objects as go

PINNED_OPACITY = 0.35
OVERLAID = {"scatter", "scattergl"}  # lines and markers read through each other; bars and heatmaps do not


def differences(pinned: dict[str, str], current: dict[str, str]) -> str:
    """The pinned run's settings that differ from the current ones, as URL parameters ("batch_size=32")."""
    changed = [f"{k}={v}" for k, v in pinned.items() if current.get(k) != v]
    changed += [f"{k}=(default)" for k in current if k not in pinned]
    return ", ".join(changed) or "the same settings"


def can_overlay(fig: go.Figure) -> bool:
    return bool(fig.data) and all(trace.type in OVERLAID for trace in fig.data)


def overlay(current: go.Figure, pinned: go.Figure, label: str) -> go.Figure:
    """A copy of `current` with the pinned figure's traces added, faded, on the same axes; their legend
    entries say "pinned (label)". The figures must be the same kind of chart (same subplots)."""
    fig = go.Figure(current)
    for trace in pinned.data:
        faded = trace.to_plotly_json() | {"opacity": PINNED_OPACITY, "legendgroup": "pinned", "hoverinfo": "skip"}
        if trace.showlegend is not False and trace.name:
            faded["name"] = f"{trace.name} · pinned"
        fig.add_trace(type(trace)(faded))
    title = fig.layout.title.text
    note = f"faded: pinned run ({label})"
    fig.update_layout(title_text=f"{title}<br><sup>{note}</sup>" if title else note)
    return fig
