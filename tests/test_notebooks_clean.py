"""The committed notebooks read the same on every machine and show results, not progress: no absolute
path of the machine that ran them, no progress bar saved frozen as text (``pipeline._make_stable``
and ``executor.run_all`` keep them out; this reads the committed files, it runs nothing)."""

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
FORBIDDEN = {"an absolute path": re.compile("|".join(re.escape(p) for p in ("/work/", "/home/", "/tmp/", "/root/",
                                                                             f"{REPO}/"))),
             "progress-bar text": re.compile(r"\d+%\|")}


def _text(value) -> str:
    """An output's value as text: nbformat keeps text as a string or a list of lines, the rest as JSON."""
    if isinstance(value, str):
        return value
    return "".join(value) if isinstance(value, list) else json.dumps(value)


def _texts(book: dict):
    """``(where, text)`` for every output's text and the notebook's metadata."""
    for i, cell in enumerate(book["cells"]):
        for out in cell.get("outputs", []):
            for kind, value in {"text": out.get("text", ""), **out.get("data", {})}.items():
                yield f"cell {i} ({kind})", _text(value)
    yield "metadata", json.dumps(book["metadata"])


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_has_no_machine_paths_and_no_bars(nb):
    bad = [f"{where}: {what}: ...{text[max(0, m.start() - 40):m.end() + 40]!r}..."
           for where, text in _texts(json.loads(nb.read_text()))
           for what, pattern in FORBIDDEN.items() for m in [pattern.search(text)] if m]
    assert not bad, f"{nb.name}:\n" + "\n".join(bad)
