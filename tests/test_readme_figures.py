"""Every measured figure in the README comes from a file in results/ that the code wrote.

A README paragraph (or table row) that states measured figures names the results file(s) they come
from, in backticks. This test reads each such block and fails when a figure in it is not found in
the files it names (allowing for the README's rounding and for percentages stored as fractions),
and when a block states a measurement (ms, img/s, GFLOP/s, a speed ratio) without naming a file.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CITED = re.compile(r"`(results/[^`\s]+)`")
# A figure: a decimal number, or an integer with a unit that marks a measurement.
FIGURE = re.compile(r"(?<![\w.\-/])(\d+(?:\.\d+)?(?:e-\d+)?)(\s?(?:%|x\b|ms\b|s\b|img/s|images/s|GFLOP/s|MB\b|min\b))?")
MEASURED_UNIT = re.compile(r"\d(?:\.\d+)?\s?(?:ms\b|img/s|images/s|GFLOP/s|x (?:faster|slower|over))")
NUMBER_IN_FILE = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def blocks(text: str) -> list[str]:
    """Paragraphs, with each table row its own block (its header row prepended) and code left out."""
    out, para, header = [], [], None
    in_code = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        if line.startswith("|"):
            if para:
                out.append(" ".join(para))
                para = []
            if header is None:
                header = line
            elif not set(line) <= set("|-: "):
                out.append(header + " " + line)
            continue
        header = None
        if not line.strip() or line.startswith("#"):
            if para:
                out.append(" ".join(para))
            para = []
        else:
            para.append(line)
    if para:
        out.append(" ".join(para))
    return out


def files_text(paths: list[str]) -> str:
    text = []
    for p in paths:
        path = ROOT / p
        if path.is_dir():
            text += [f.read_text(errors="replace") for f in sorted(path.rglob("*"))
                     if f.is_file() and f.suffix in (".csv", ".json", ".md", ".toml", ".txt")]
        elif path.exists():
            text.append(path.read_text(errors="replace"))
    return "\n".join(text)


def found(figure: str, unit: str, numbers: list[float]) -> bool:
    """`figure` as written in the README, within its last digit's rounding, of a number in the file
    (or of a fraction times 100 for a percentage, or a number of seconds for minutes)."""
    value = float(figure)
    digits = len(figure.split("e")[0].split(".")[1]) if "." in figure.split("e")[0] else 0
    exp = int(figure.split("e")[1]) if "e" in figure else 0
    tol = 0.5 * 10 ** (exp - digits) + 1e-12
    scales = [1.0]
    if unit.strip() == "%":
        scales.append(100.0)
    if unit.strip() == "min":
        scales.append(1 / 60)
    return any(abs(n * s - value) <= tol for n in numbers for s in scales)


def problems(readme: str) -> list[str]:
    bad = []
    for block in blocks(readme):
        cited = CITED.findall(block)
        if not cited:
            m = MEASURED_UNIT.search(block)
            if m:
                bad.append(f"a measured figure ({m.group(0)!r}) without a results file named: {block[:120]}...")
            continue
        missing = [p for p in cited if not (ROOT / p).exists()]
        if missing:
            bad.append(f"names results files that do not exist: {missing}")
            continue
        numbers = [float(n) for n in NUMBER_IN_FILE.findall(files_text(cited))]
        # The cited paths themselves, and file names, hold digits that are not figures.
        prose = CITED.sub("", re.sub(r"`[^`]*`", "", block))
        for figure, unit in FIGURE.findall(prose):
            if "." not in figure and "e" not in figure and not unit:
                continue  # a plain integer (a count, a batch size) is not checked
            if not found(figure, unit or "", numbers):
                bad.append(f"{figure}{unit or ''} is not in {', '.join(cited)}: {block[:160]}...")
    return bad


def test_every_readme_figure_is_in_the_results_file_it_names():
    assert problems((ROOT / "README.md").read_text()) == []


def test_the_check_catches_a_figure_that_drifted_and_an_uncited_measurement(tmp_path):
    results = ROOT / "results"
    some = sorted(results.rglob("*.csv"))[0].relative_to(ROOT)
    numbers = NUMBER_IN_FILE.findall((ROOT / some).read_text())
    real = next(n for n in numbers if "." in n and "e" not in n.lower())
    drifted = f"{float(real) * 1.37 + 0.111:.3f}"
    assert problems(f"Measured {real} ms (`{some}`).\n") == []
    assert problems(f"Measured {drifted} ms (`{some}`).\n") != []
    assert problems("It runs 2.5x faster than before.\n") != []
    assert problems("A table:\n\n| a | b |\n|---|---|\n| x | 3.14159 ms |\n") != []
    assert problems("Missing file (`results/no/such/file.csv`): 1.5 ms.\n") != []
