"""Every numbered notebook runs top to bottom, in order, each in a fresh kernel, at smoke scale,
from an empty runs root (so the notebooks train and score what they show), writing executed
copies and figures to a temporary folder; the manifest shows each selection reaching the next
stage. The committed notebooks and figures are untouched (the session check in conftest.py)."""

import json
import os
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.py"))
FIGURES = {"01_data_mixture": ["table1_mixture.png", "table1_lengths.png"],
           "02_packing_efficiency": ["fig3_packing_toy.png", "fig3_packing_efficiency.png"],
           "03_lr_search": ["fig2_lr_search.png"], "04_sft_loss_curves": ["fig4_loss_curves.png"],
           "06_dpo_reward_gaps": ["fig5_reward_margins.png"], "08_benchmarks": ["table5_ours_groups.png"]}


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    from hermes3.recipe.pipeline import run_notebooks

    root = tmp_path_factory.mktemp("nb")
    env = {"HERMES3_RUNS": str(root / "runs"), "HERMES3_FIGURES": str(root / "figures")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        times = run_notebooks("smoke", out_dir=root / "notebooks")
    finally:
        os.environ.update({k: v for k, v in saved.items() if v is not None})
    return root, dict(times)


def _outputs(cells) -> str:
    text = []
    for c in cells:
        for o in c.get("outputs", []):
            text.append(o.get("text", "") if o.get("output_type") == "stream" else json.dumps(o.get("data", {})))
    return "\n".join(text)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_shows_the_report_beside_ours(executed, nb):
    root, times = executed
    assert nb.stem in times
    cells = nbformat.read(root / "notebooks" / f"{nb.stem}.ipynb", as_version=4).cells
    out = _outputs(cells)
    assert "report" in out.lower()  # the report's number is in what the reader sees, labelled
    for fig in FIGURES.get(nb.stem, []):
        assert (root / "figures" / fig).stat().st_size > 1000
    noisy = [len(_outputs([c]).splitlines()) for c in cells if c.cell_type == "code"]
    assert max(noisy) <= 40, f"a cell prints {max(noisy)} lines"


def test_manifest_hands_each_selection_to_the_next_stage(executed):
    root, _ = executed
    m = json.loads((root / "runs" / "smoke" / "manifest.json").read_text())["stages"]
    assert m["sft"]["inputs"]["lr"] == m["lr_search"]["selection"]["lr"]
    assert m["dpo"]["inputs"]["model"] == m["epoch_selection"]["selection"]["checkpoint"]
    assert m["fp8"]["inputs"]["model"] == m["dpo"]["outputs"]["merged"]
    assert m["benchmarks"]["inputs"]["SFT"] == m["epoch_selection"]["selection"]["checkpoint"]
    assert m["benchmarks"]["inputs"]["SFT+DPO FP8"] == m["fp8"]["outputs"]["dir"]
    for stage in m.values():
        assert stage["code"]["hermes3_sources"]
