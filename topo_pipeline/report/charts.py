"""Weekly line charts as inline SVG, rendered on the server: the page needs no script.

:func:`weekly_rate_chart` draws rates (0-100 %) per week as one line per series, with
axes, gridlines, units, a legend and an accessible title. Series differ by colour (the
Okabe-Ito palette, safe for the common colour-vision deficiencies) *and* by dash pattern
and marker shape, so they stay apart in grayscale print too. A week without a value breaks
its line; weeks the data covers only in part are drawn as hollow markers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

PALETTE: tuple[str, ...] = (
    "#D55E00",  # vermillion
    "#0072B2",  # blue
    "#009E73",  # bluish green
    "#E69F00",  # orange
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#000000",  # black
    "#B8A100",  # Okabe-Ito yellow (#F0E442), darkened to show on white
)
"""Okabe & Ito's colour-blind-safe palette, in the order series take it."""

DASHES: tuple[str, ...] = ("", "7 4", "2 3", "9 3 2 3", "4 4", "1 2", "12 4", "6 2 2 2")
"""A dash pattern per series, so lines differ without colour."""

MAX_SERIES = len(PALETTE)

MARKER_POINTS_LIMIT = 26
"""Up to this many weeks every point gets a marker; beyond, only the partial weeks."""

_WIDTH, _HEIGHT = 480, 270
_LEFT, _RIGHT, _TOP, _BOTTOM = 58, 12, 12, 58
_LEGEND_ROW = 18
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class Series:
    """One line: its legend name and a value per week (a rate in [0, 1], or ``None``)."""

    name: str
    values: tuple[float | None, ...]


def weekly_rate_chart(
    chart_id: str,
    title: str,
    weeks: Sequence[date],
    series: Sequence[Series],
    *,
    y_title: str,
    x_title: str,
    partial_weeks: frozenset[date] = frozenset(),
) -> str:
    """An ``<svg>`` of ``series`` over ``weeks`` (each a Monday), rates as percentages.

    Args:
        chart_id: a page-unique id; the SVG carries it as ``data-chart``.
        title: the chart's accessible title (the page shows its own heading).
        weeks: the x axis, one Monday per week, in order.
        series: at most :data:`MAX_SERIES` lines, each with one value per week.
        y_title, x_title: the axis titles, units included.
        partial_weeks: weeks drawn with hollow markers (data covers only some days).

    Raises:
        ValueError: on more series than colours, or values not aligned with ``weeks``.
    """
    if len(series) > MAX_SERIES:
        raise ValueError(f"at most {MAX_SERIES} series per chart, got {len(series)}")
    for line in series:
        if len(line.values) != len(weeks):
            raise ValueError(f"series {line.name!r} has {len(line.values)} values for {len(weeks)}")
    legend_rows = math.ceil(len(series) / 3) if series else 0
    height = _HEIGHT + 8 + legend_rows * _LEGEND_ROW
    plot_w = _WIDTH - _LEFT - _RIGHT
    plot_h = _HEIGHT - _TOP - _BOTTOM
    step = plot_w / max(len(weeks) - 1, 1)

    def x(index: float) -> float:
        return _LEFT + (index * step if len(weeks) > 1 else plot_w / 2)

    def y(value: float) -> float:
        return _TOP + plot_h * (1 - value)

    parts = [
        f'<svg class="chart" data-chart="{escape(chart_id)}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {_WIDTH} {height}" role="img" aria-labelledby="{chart_id}-title">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        _axes(weeks, x, y, plot_w, plot_h, x_title=x_title, y_title=y_title),
    ]
    with_markers = len(weeks) <= MARKER_POINTS_LIMIT
    for index, line in enumerate(series):
        parts.append(_series(index, line, weeks, x, y, partial_weeks, with_markers))
    parts.append(_legend(series, top=_HEIGHT + 4))
    parts.append("</svg>")
    return "".join(parts)


Scale = Callable[[float], float]


def _axes(
    weeks: Sequence[date],
    x: Scale,
    y: Scale,
    plot_w: float,
    plot_h: float,
    *,
    x_title: str,
    y_title: str,
) -> str:
    out = ['<g class="axes" font-size="11" fill="#333">']
    for tick in (0, 0.25, 0.5, 0.75, 1):
        ty = y(tick)
        out.append(
            f'<line x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{ty:.1f}" y2="{ty:.1f}" '
            f'stroke="{"#555" if tick == 0 else "#ddd"}" stroke-width="1"/>'
            f'<text x="{_LEFT - 6}" y="{ty + 4:.1f}" text-anchor="end">{tick * 100:.0f}%</text>'
        )
    out.append(f'<line x1="{_LEFT}" x2="{_LEFT}" y1="{_TOP}" y2="{_TOP + plot_h}" stroke="#555"/>')
    every = max(1, math.ceil(len(weeks) / 8))
    previous_year = None
    for index, week in enumerate(weeks):
        if index % every:
            continue
        tx = x(index)
        base = _TOP + plot_h
        label = f"{week.day} {MONTHS[week.month - 1]}"
        year = (
            f'<tspan x="{tx:.1f}" dy="12">{week.year}</tspan>' if week.year != previous_year else ""
        )
        previous_year = week.year
        out.append(
            f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{base}" y2="{base + 4}" stroke="#555"/>'
            f'<text x="{tx:.1f}" y="{base + 15}" text-anchor="middle">{label}{year}</text>'
        )
    out.append(
        f'<text class="axis-title" x="{_LEFT + plot_w / 2:.1f}" y="{_TOP + plot_h + 44}" '
        f'text-anchor="middle">{escape(x_title)}</text>'
        f'<text class="axis-title" transform="translate(13 {_TOP + plot_h / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_title)}</text></g>'
    )
    return "".join(out)


def _series(
    index: int,
    line: Series,
    weeks: Sequence[date],
    x: Scale,
    y: Scale,
    partial: frozenset[date],
    with_markers: bool,
) -> str:
    colour, dash = PALETTE[index], DASHES[index]
    segments: list[str] = []
    current: list[str] = []
    for i, value in enumerate(line.values):
        if value is None:
            if current:
                segments.append("M" + "L".join(current))
            current = []
            continue
        current.append(f"{x(i):.1f},{y(value):.1f}")
    if current:
        segments.append("M" + "L".join(current))
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    out = [
        f'<g class="series" data-series="{escape(line.name)}">',
        f'<path d="{"".join(segments)}" fill="none" stroke="{colour}" '
        f'stroke-width="2"{dash_attr}/>',
    ]
    for i, value in enumerate(line.values):
        hollow = weeks[i] in partial
        if value is None or not (with_markers or hollow):
            continue
        label = f"{line.name}, week of {weeks[i].isoformat()}: {value * 100:.1f}%"
        out.append(_marker(index, x(i), y(value), colour, hollow=hollow, label=label))
    out.append("</g>")
    return "".join(out)


def _marker(index: int, cx: float, cy: float, colour: str, *, hollow: bool, label: str) -> str:
    fill = "#fff" if hollow else colour
    style = f'fill="{fill}" stroke="{colour}" stroke-width="1.5"'
    title = f"<title>{escape(label)}</title>"
    shape = index % 4
    if shape == 0:
        return f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.5" {style}>{title}</circle>'
    if shape == 1:
        return (
            f'<rect x="{cx - 3.2:.1f}" y="{cy - 3.2:.1f}" width="6.4" height="6.4" {style}>'
            f"{title}</rect>"
        )
    if shape == 2:
        points = f"{cx:.1f},{cy - 4.2:.1f} {cx + 4:.1f},{cy + 3:.1f} {cx - 4:.1f},{cy + 3:.1f}"
    else:
        points = (
            f"{cx:.1f},{cy - 4.5:.1f} {cx + 4:.1f},{cy:.1f} "
            f"{cx:.1f},{cy + 4.5:.1f} {cx - 4:.1f},{cy:.1f}"
        )
    return f'<polygon points="{points}" {style}>{title}</polygon>'


def _legend(series: Sequence[Series], *, top: float) -> str:
    out = ['<g class="legend" font-size="11" fill="#222">']
    column_width = (_WIDTH - _LEFT - _RIGHT) / 3
    for index, line in enumerate(series):
        row, column = divmod(index, 3)
        lx = _LEFT + column * column_width
        ly = top + row * _LEGEND_ROW
        dash = f' stroke-dasharray="{DASHES[index]}"' if DASHES[index] else ""
        out.append(
            f'<g class="legend-item"><line x1="{lx:.1f}" x2="{lx + 26:.1f}" y1="{ly:.1f}" '
            f'y2="{ly:.1f}" stroke="{PALETTE[index]}" stroke-width="2"{dash}/>'
            + _marker(index, lx + 13, ly, PALETTE[index], hollow=False, label=line.name)
            + f'<text x="{lx + 32:.1f}" y="{ly + 4:.1f}">{escape(_short(line.name))}</text></g>'
        )
    out.append("</g>")
    return "".join(out)


def _short(name: str, limit: int = 24) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"
