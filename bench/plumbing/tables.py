"""Markdown pipe tables: readable in a terminal or a CI log, and valid Markdown when saved."""
from __future__ import annotations

import math
import re
from typing import Sequence

_NUMBER = re.compile(r"^(-|[+-]?\d+(\.\d+)?(e[+-]?\d+)?%?)$")


def render(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell; columns of numbers right-aligned. Floats print with
    three decimals and NaN as "-"; pass strings to format cells yourself."""
    cells = [[_text(v) for v in row] for row in rows]
    headers = [str(h) for h in headers]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    # Right-align columns of numbers (and of formatted numbers such as "+12.5%").
    numeric = [bool(rows) and all(_NUMBER.match(r[i]) for r in cells if r[i]) for i in range(len(headers))]

    def line(values):
        return "| " + " | ".join(v.rjust(w) if num else v.ljust(w)
                                 for v, w, num in zip(values, widths, numeric)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if num else ("-" * (w + 2))
                          for w, num in zip(widths, numeric)) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in cells)])


def _text(value: object) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3f}"
    return str(value).replace("|", "/")


def percent(fraction: float) -> str:
    return "-" if math.isnan(fraction) else f"{fraction * 100:+.1f}%"


def frame_table(df, floats: str = "{:.3g}") -> str:
    """A pandas DataFrame as a table: missing values empty, whole numbers without decimals,
    other floats with `floats`."""
    import numpy as np
    import pandas as pd

    def cell(v) -> str:
        if v is None or v is pd.NA or (isinstance(v, (float, np.floating)) and math.isnan(v)):
            return ""
        if isinstance(v, (float, np.floating)):
            return str(int(v)) if float(v).is_integer() and abs(v) >= 1 else floats.format(v)
        return str(v)

    return render(list(df.columns), [[cell(v) for v in row] for row in df.itertuples(index=False)])
