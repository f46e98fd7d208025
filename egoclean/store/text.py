"""Text of the store: query results as an aligned table, DuckDB's messages and SQL on one line."""

from __future__ import annotations

from typing import Any, Sequence


def one_line(msg: str) -> str:
    """DuckDB's message up to its 'LINE n:' caret excerpt, on one line."""
    kept = []
    for line in str(msg).splitlines():
        if line.startswith("LINE "):
            break
        if line.strip():
            kept.append(line.strip())
    return " ".join(kept) or str(msg).strip()


def short(sql: str, limit: int = 200) -> str:
    """`sql` on one line, cut to `limit` characters."""
    s = " ".join(sql.split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _cell(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}={_cell(x)}" for k, x in v.items()) + "}"
    return str(v)


def format_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], max_rows: int | None = None, more: bool = False
) -> str:
    """An aligned box table like DuckDB's own: header, rows, then the row count
    (`more`: the query has rows beyond these, not fetched)."""
    if not columns:
        return "(no result)"
    shown = list(rows) if max_rows is None else list(rows[:max_rows])
    cells = [[_cell(v) for v in r] for r in shown]
    numeric = [
        all(isinstance(r[i], (int, float)) and not isinstance(r[i], bool) for r in shown if r[i] is not None)
        and any(r[i] is not None for r in shown)
        for i in range(len(columns))
    ]
    widths = [max([len(str(c))] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(parts: Sequence[str], right: Sequence[bool]) -> str:
        return "│ " + " │ ".join(
            p.rjust(w) if r else p.ljust(w) for p, w, r in zip(parts, widths, right)
        ) + " │"

    def rule(left: str, mid: str, right: str) -> str:
        return left + mid.join("─" * (w + 2) for w in widths) + right

    out = [rule("┌", "┬", "┐"), line([str(c).center(w) for c, w in zip(columns, widths)], [False] * len(widths))]
    out.append(rule("├", "┼", "┤"))
    out += [line(r, numeric) for r in cells]
    out.append(rule("└", "┴", "┘"))
    n = len(rows)
    footer = f"{n} row" + ("" if n == 1 else "s")
    if more:
        footer += " shown (more not fetched: raise --max-rows to see them)"
    elif len(shown) < n:
        footer += f" ({len(shown)} shown)"
    out.append(footer)
    return "\n".join(out)
