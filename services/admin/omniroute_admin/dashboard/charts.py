"""Inline SVG charts for the dashboard: server-rendered, no script, readable without colour (each
chart has a title, a text summary and, beside it, the numbers as a table)."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 640, 200, 70, 26, 14


def _scale(values: Sequence[float]) -> float:
    top = max(values, default=0.0)
    return top if top > 0 else 1.0


def _axis(top: float, unit: str) -> str:
    return (f'<text class="axis" x="{PAD_LEFT - 6}" y="{PAD_TOP + 4}" text-anchor="end">'
            f'{escape(_short(top))}{escape(unit)}</text>'
            f'<text class="axis" x="{PAD_LEFT - 6}" y="{HEIGHT - PAD_BOTTOM}" text-anchor="end">0</text>'
            f'<line class="baseline" x1="{PAD_LEFT}" x2="{WIDTH}" y1="{HEIGHT - PAD_BOTTOM}" '
            f'y2="{HEIGHT - PAD_BOTTOM}"/>')


def _short(value: float) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}{suffix}"
    return f"{value:.0f}" if value == int(value) else f"{value:.2f}"


def _labels(labels: Sequence[str], step: float) -> str:
    every = max(1, len(labels) // 6)
    return "".join(
        f'<text class="axis" x="{PAD_LEFT + step * (i + 0.5):.1f}" y="{HEIGHT - 4}" '
        f'text-anchor="middle">{escape(label)}</text>'
        for i, label in enumerate(labels) if i % every == 0)


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float], unit: str = "",
              highlight: Sequence[float] | None = None) -> Markup:
    """Bars for `values`; `highlight` (e.g. errors) drawn over them in a second colour."""
    top = _scale(values)
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    step = (WIDTH - PAD_LEFT) / max(1, len(values))
    bars = []
    for i, value in enumerate(values):
        height = plot_h * value / top
        x = PAD_LEFT + step * i + step * 0.15
        bars.append(f'<rect class="bar" x="{x:.1f}" y="{HEIGHT - PAD_BOTTOM - height:.1f}" '
                    f'width="{step * 0.7:.1f}" height="{height:.1f}"><title>{escape(labels[i])}: '
                    f'{escape(_short(value))}{escape(unit)}</title></rect>')
        if highlight and highlight[i] > 0:
            extra = plot_h * highlight[i] / top
            bars.append(f'<rect class="bar-alt" x="{x:.1f}" y="{HEIGHT - PAD_BOTTOM - extra:.1f}" '
                        f'width="{step * 0.7:.1f}" height="{extra:.1f}"><title>{escape(labels[i])}: '
                        f'{escape(_short(highlight[i]))} errors</title></rect>')
    summary = f"{title}: total {_short(sum(values))}{unit}, peak {_short(max(values, default=0))}{unit}"
    return Markup(f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
                  f'aria-label="{escape(summary)}"><title>{escape(summary)}</title>'
                  f'{_axis(top, unit)}{"".join(bars)}{_labels(labels, step)}</svg>')


def line_chart(title: str, labels: Sequence[str], values: Sequence[float | None], unit: str = "") -> Markup:
    """A line through the known points (None = no data in that bucket: a gap)."""
    known = [v for v in values if v is not None]
    top = _scale(known)
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    step = (WIDTH - PAD_LEFT) / max(1, len(values))
    segments: list[list[str]] = [[]]
    dots = []
    for i, value in enumerate(values):
        if value is None:
            segments.append([])
            continue
        x, y = PAD_LEFT + step * (i + 0.5), HEIGHT - PAD_BOTTOM - plot_h * value / top
        segments[-1].append(f"{x:.1f},{y:.1f}")
        dots.append(f'<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="3"><title>{escape(labels[i])}: '
                    f'{escape(_short(value))}{escape(unit)}</title></circle>')
    lines = "".join(f'<polyline class="line" points="{" ".join(s)}"/>' for s in segments if len(s) > 1)
    summary = (f"{title}: highest {_short(max(known))}{unit}" if known else f"{title}: no data")
    return Markup(f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
                  f'aria-label="{escape(summary)}"><title>{escape(summary)}</title>'
                  f'{_axis(top, unit)}{lines}{"".join(dots)}{_labels(labels, step)}</svg>')
