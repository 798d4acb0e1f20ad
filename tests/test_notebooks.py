"""Every numbered notebook runs top to bottom in a fresh kernel at smoke scale."""

from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_at_smoke_scale(nb, tmp_path):
    import nbformat

    from hermes3.pipeline import run_notebooks

    ((name, _),) = run_notebooks("smoke", out_dir=tmp_path, names=[nb.name])
    cells = nbformat.read(tmp_path / nb.name, as_version=4).cells
    errors = [o for c in cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    # each notebook ends by setting the report's number beside ours
    assert "report" in "".join(c.source for c in cells[-2:]).lower()
