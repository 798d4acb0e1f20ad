"""scripts/mutation_check.py (the run itself is heavy and not part of `make test`): its list is
well formed and still matches the code, and a stale snippet is refused in one line."""

import importlib.util

from conftest import ROOT

spec = importlib.util.spec_from_file_location("mutation_check", ROOT / "scripts" / "mutation_check.py")
mutation_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mutation_check)


def test_every_mutation_matches_the_code_once_and_names_existing_tests():
    entries = mutation_check.load()
    assert len(entries) >= 20
    assert mutation_check.stale(entries) is None
    for e in entries:
        assert e["original"] != e["replacement"], e["id"]
        for t in e["tests"]:
            assert (ROOT / t.split("::")[0]).is_file(), (e["id"], t)


def test_a_stale_snippet_is_one_line():
    entry = {"id": "gone", "file": "hermes3/eval/compare.py", "original": "no such line", "replacement": "x"}
    line = mutation_check.stale([entry])
    assert line.startswith("mutation_check: gone: snippet not found in hermes3/eval/compare.py") and "\n" not in line
