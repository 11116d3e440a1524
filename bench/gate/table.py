"""Plain-text tables for gate verdicts: readable in a CI log, valid Markdown when saved."""
from __future__ import annotations

import math
import re
from typing import Sequence

_NUMBER = re.compile(r"^(-|[+-]?\d+(\.\d+)?%?)$")


def render(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown pipe table, columns padded to their widest cell; numbers right-aligned."""
    cells = [[_text(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    # Right-align columns of numbers (and of formatted numbers such as "+12.5%").
    numeric = [bool(rows) and all(_NUMBER.match(r[i]) for r in cells) for i in range(len(headers))]

    def line(values):
        return "| " + " | ".join(v.rjust(w) if num else v.ljust(w)
                                 for v, w, num in zip(values, widths, numeric)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if num else ("-" * (w + 2))
                          for w, num in zip(widths, numeric)) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in cells)])


def _text(value: object) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def percent(fraction: float) -> str:
    return "-" if math.isnan(fraction) else f"{fraction * 100:+.1f}%"


def perf_table(comparisons) -> str:
    """One row per benchmark: medians, slowdown, its confidence bound, threshold, verdict."""
    headers = ["benchmark", "base_ms", "candidate_ms", "slowdown", "slowdown_low95", "threshold",
               "rounds", "verdict", "note"]
    rows = [[c.name, c.base_ms, c.candidate_ms, percent(c.ratio - 1), percent(c.ratio_low - 1),
             f"+{c.threshold * 100:.0f}%", c.rounds, c.verdict, c.note] for c in comparisons]
    return render(headers, rows)
