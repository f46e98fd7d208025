"""Materialization metadata helpers: times as mm:ss, span tables, pictures for the UI."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Iterable

from dagster import MetadataValue

from egoclean.core.timecode import mmss


def spans_table(spans: Iterable[Any], extra: dict[str, list] | None = None) -> MetadataValue:
    """A markdown table of spans (start/end as mm:ss and seconds, length, peak score)."""
    spans = list(spans)
    if not spans:
        return MetadataValue.md("_no spans_")
    head = "| # | start | end | start s | end s | length s | peak score |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for i, sp in enumerate(spans, 1):
        peak = getattr(sp, "peak_score", None)
        lines.append(
            f"| {i} | {mmss(sp.start_sec)} | {mmss(sp.end_sec)} | {sp.start_sec:.1f} | {sp.end_sec:.1f} | "
            f"{sp.end_sec - sp.start_sec:.1f} | {'' if peak is None else f'{peak:.4f}'} |"
        )
    return MetadataValue.md("\n".join(lines))


def picture(path: str | Path, title: str, location: str | None = None, width: int | None = None) -> MetadataValue:
    """A small copy of the PNG inline (base64 in markdown, so the UI shows it), naming where the full one is.

    The one helper every picture in metadata goes through. Only the reduced copy
    (egoclean.temporal.plots.thumbnail, at most 40 KB, `width` px wide: default THUMBNAIL_WIDTH)
    goes into the event log; the full-size picture stays a file in the data root (`location`).
    Dagster 1.13 has no image metadata type and shows a markdown entry inline only under
    1,000 characters, so a picture is one "[Show Markdown]" click away (docs/ARCHITECTURE.md).
    """
    # imported here, not at module top: loading the definitions must not import matplotlib/PIL
    from egoclean.temporal.plots import THUMBNAIL_WIDTH, thumbnail

    small, mime = thumbnail(path, width=width or THUMBNAIL_WIDTH)
    data = base64.b64encode(small).decode("ascii")
    where = f" (full size: `{location}`)" if location else ""
    return MetadataValue.md(f"**{title}**{where}\n\n![{title}](data:{mime};base64,{data})")


DISPLAY_DIGITS = 4  # significant digits of scores and thresholds in the UI


def shown(x: float, digits: int = DISPLAY_DIGITS) -> MetadataValue:
    """A score or threshold for display, to `digits` significant digits (the data keeps full precision)."""
    return MetadataValue.float(float(f"{float(x):.{digits}g}"))


def rate(count: float, seconds: float) -> float:
    """count per second, 0 when no time was measured."""
    return round(count / seconds, 3) if seconds > 0 else 0.0
