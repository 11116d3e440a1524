"""The accuracy gate's proof patches real lines of the project: they must still be there, once."""
from __future__ import annotations

import pytest

from bench.gate import accuracy_proof as proof


@pytest.mark.parametrize("bug", proof.BUGS, ids=lambda b: b.name)
def test_each_injected_bug_patches_a_line_that_exists_once(bug, tmp_path):
    source = proof.REPO_ROOT / bug.path
    assert source.read_text().count(bug.old) == 1
    tree = tmp_path / "tree"
    (tree / bug.path).parent.mkdir(parents=True)
    (tree / bug.path).write_text(source.read_text())
    proof.apply(bug, tree)
    patched = (tree / bug.path).read_text()
    assert bug.new in patched and patched != source.read_text()
    compile(patched, bug.path, "exec")  # the patched module is still valid Python


def test_a_drifted_line_is_a_clear_error(tmp_path):
    bug = proof.BUGS[0]
    (tmp_path / bug.path).parent.mkdir(parents=True)
    (tmp_path / bug.path).write_text("nothing to patch\n")
    with pytest.raises(RuntimeError, match="occurs 0 times"):
        proof.apply(bug, tmp_path)


def test_verdicts_of_trials():
    ok = proof.Trial("unchanged_seed0", "", "pass", 0, "ok", 0.97, "", 1.0)
    alarm = proof.Trial("unchanged_seed1", "", "pass", 1, "BELOW", 0.95, "", 1.0)
    caught = proof.Trial("bug", "", "fail", 1, "BELOW", 0.1, "", 1.0)
    missed = proof.Trial("bug", "", "fail", 0, "ok", 0.97, "", 1.0)
    probe = proof.Trial("probe", "", "probe", 0, "ok", 0.97, "", 1.0)
    assert [t.correct for t in (ok, alarm, caught, missed, probe)] == [True, False, True, False, True]
    assert [t.outcome for t in (ok, alarm, caught, missed, probe)] == ["passed", "FALSE ALARM", "caught", "MISSED", "missed"]
