"""The layout's promise, checked on the code: imports only run down the data flow
(plumbing -> data -> zoo -> train -> export -> measure -> harness -> gate -> the command line),
and `--help` of every command answers without loading TensorFlow."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# package prefix -> layer; the longest matching prefix decides
LAYERS = {
    "bench.plumbing": 0,
    "bench.data": 1,
    "zoo": 2,
    "bench.train": 3, "bench.distribute": 3,
    "export": 4,
    "bench.measure": 5,
    "bench.harness": 6,
    "bench.gate": 7, "perf_systems": 7, "conftest": 7, "test_perf_calibration": 7, "test_perf_export": 7,
    "test_perf_infer": 7, "test_perf_train": 7,
    "bench.cli": 8, "bench.__main__": 8,
}
PACKAGE_ROOTS = {"bench": 0}  # bench/__init__.py itself imports nothing


def layer_of(module: str) -> int | None:
    if module in PACKAGE_ROOTS:
        return PACKAGE_ROOTS[module]
    matches = [p for p in LAYERS if module == p or module.startswith(p + ".")]
    return LAYERS[max(matches, key=len)] if matches else None


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    if rel.parts[:3] == ("bench", "gate", "perf_suite"):
        return rel.name  # the suite's own modules import as top-level names
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """Every module imported anywhere in the file (top level or inside functions)."""
    found = []
    package = module_name(path).rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found += [(node.lineno, f"{base}.{a.name}" if layer_of(f"{base}.{a.name}") is not None else base)
                      for a in node.names]
    return found


SOURCES = sorted(p for d in ("bench", "zoo", "export") for p in (REPO / d).rglob("*.py"))


def test_every_source_file_has_a_layer():
    assert SOURCES
    assert [str(p) for p in SOURCES if layer_of(module_name(p)) is None] == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_imports_run_only_downward(path):
    own = layer_of(module_name(path))
    upward = [f"line {line}: {name} (layer {layer_of(name)} > {own})" for line, name in imports(path)
              if layer_of(name) is not None and layer_of(name) > own]
    assert upward == [], f"{path.relative_to(REPO)} imports a layer above its own"


@pytest.mark.parametrize("command", [
    ["-m", "bench", "--help"], ["-m", "bench", "run", "--help"], ["-m", "bench", "train", "--help"],
    ["-m", "bench", "data", "--help"], ["-m", "bench", "perf-check", "--help"],
    ["-m", "bench", "accuracy-check", "--help"], ["-m", "bench", "report", "--help"],
    ["-m", "bench", "distribute", "--help"], ["-m", "bench", "distribute", "worker", "--help"],
    ["-m", "bench", "distribute", "scaling", "--help"], ["-m", "bench", "distribute", "launch", "--help"],
    ["-m", "export", "--help"], ["-m", "export", "predict", "--help"], ["-m", "zoo", "--help"],
], ids=lambda c: " ".join(c[1:]))
def test_help_answers_without_loading_tensorflow(command):
    code = ("import runpy, sys; sys.argv = sys.argv[1:]\n"
            "try:\n    runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
            "except SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
            "print('TF_LOADED' if 'tensorflow' in sys.modules else 'TF_NOT_LOADED')\n"
            "sys.exit(0 if code in (0, None) else 1)")
    module, *args = command[1:]
    out = subprocess.run([sys.executable, "-c", code, module, *args], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage" in out.stdout.lower()
    assert out.stdout.strip().endswith("TF_NOT_LOADED"), f"{' '.join(command)} loaded TensorFlow"
