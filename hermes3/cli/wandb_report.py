"""``hermes3 wandb-report``: one W&B Report with a section per report item, built from the logged runs.

Every stage logs to project ``hermes3`` with ``group`` = the report item (``hermes3.core.tracking``);
this module turns those runs into a W&B Report with ``wandb-workspaces`` (the Reports API W&B
publishes). Each section names the report's figure or table, prints the report's numbers
(``data/report``, ``hermes3.core.report``, report §3–5) and puts our panels next to them:

=========  =====================================  ==========  ==========================================
item       what                                   run group   our keys
=========  =====================================  ==========  ==========================================
Fig. 2     LR search: scores by learning rate     lr-search   table ``lr_search``, ``selected_lr``
Fig. 3     packing efficiency                     packing     table ``packing_efficiency``
Fig. 4     SFT loss curves by model size          sft         history ``train/loss``, table ``fig4_table``
Table 2    per-epoch scores and selection         sft         table ``table2_ours``, ``selected_epoch``
Fig. 5     DPO reward margins over steps          dpo         history ``train/rewards/margins``
Table 5    benchmarks by stage                    eval        table ``scores``
=========  =====================================  ==========  ==========================================

``SECTIONS`` is the declarative spec; ``build`` turns it into ``wandb_workspaces`` objects and
``publish`` saves them. Building the W&B model needs the server (a run set looks its project
up), so offline the spec itself is written (JSON), and ``unlogged`` checks it against what
runs logged, e.g. the offline runs before ``wandb sync`` (``--check runs/wandb/wandb``).

>>> [s["item"] for s in sections()]
['Fig. 2', 'Fig. 3', 'Fig. 4', 'Table 2', 'Fig. 5', 'Table 5']
>>> unlogged(sections()[:1], {"lr-search": {"lr_search": "table", "fig2": "image", "selected_lr": "summary"}})
["Fig. 2: summary 'report_selected_lr' is not logged by any run in group 'lr-search'"]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from hermes3.core.errors import Hermes3Error
from hermes3.core.paths import resolve, runs
from hermes3.core.tracking import PROJECT

# Panel kinds and the kind of logged key each needs: a history series (run.log of a number),
# a summary value (run.summary, or the last history value), a wandb.Table, a wandb.Image.
NEEDS = {"line": "history", "scalar": "summary", "table": "table", "table_chart": "table", "image": "image"}


def _md_table(df) -> str:
    """A DataFrame as a Markdown table (W&B Markdown blocks render it); no tabulate needed."""
    cols = [str(c) for c in df.columns]
    rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    rows += ["| " + " | ".join("" if v != v else str(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join(rows)


def _table2() -> str:
    from hermes3.core.report import report_table

    t = report_table(2)
    keep = ["GPT4All", "AGIEval", "IFEval", "MT-Bench", "normalized_GPT4All", "normalized_AGIEval",
            "normalized_IFEval", "normalized_MT-Bench", "Total Score"]
    return ("Report, Table 2 (70B SFT by epoch; min-max normalised groups, epoch 3 selected):\n\n"
            + _md_table(t[t.metric.isin(keep)].drop(columns="group")))


def _table5() -> str:
    from hermes3.core.report import report_table

    t = report_table(5).drop(columns=["lm_eval_task", "num_fewshot"])
    return "Report, Table 5 (Hermes 3 vs Llama 3.1 Instruct; 405B under FP8):\n\n" + _md_table(t)


def sections() -> list[dict]:
    """The report's items, each with its run group, the report's numbers (Markdown) and our panels.

    A panel is ``{"kind", "title", ...}``: ``line`` plots history keys ``y`` against ``x``;
    ``scalar`` shows a summary ``key``; ``table`` a logged ``wandb.Table``; ``table_chart`` a
    line of two columns of a table; ``image`` a logged ``wandb.Image``.
    """
    from hermes3.train.packing_stats import REPORT_EFFICIENCY

    return [
        {"item": "Fig. 2", "title": "Learning-rate search on GPT4All", "group": "lr-search",
         "report": ("Report, Fig. 2: 8B models trained to completion at LR 5–10 ×10⁻⁶, scored on the seven GPT4All "
                    "tasks; **7×10⁻⁶ selected** (per-point values not printed). Ours: the same sweep at demo scale, "
                    "scored on the GPT4All stand-in (`report_selected_lr` beside `selected_lr`)."),
         "panels": [{"kind": "table_chart", "title": "GPT4All stand-in by LR (ours)", "key": "lr_search",
                     "x": "lr", "y": "gpt4all_standin"},
                    {"kind": "scalar", "title": "selected LR (ours)", "key": "selected_lr"},
                    {"kind": "scalar", "title": "selected LR (report)", "key": "report_selected_lr"},
                    {"kind": "table", "title": "LR search scores (ours)", "key": "lr_search"},
                    {"kind": "image", "title": "Fig. 2 (ours)", "key": "fig2"}]},
        {"item": "Fig. 3", "title": "Sample packing efficiency", "group": "packing",
         "report": (f"Report, §4.1 and Fig. 3: packing reaches **{REPORT_EFFICIENCY:.0%} efficiency** (\"only 4% of "
                    "tokens are the padding token\"). Ours: each packer on each data set, same 8192-token rows."),
         "panels": [{"kind": "table", "title": "packing efficiency by set and packer (ours)", "key": "packing_efficiency"},
                    {"kind": "scalar", "title": "efficiency (report)", "key": "report_efficiency"},
                    {"kind": "image", "title": "Fig. 3 (ours)", "key": "packing_efficiency_plot"}]},
        {"item": "Fig. 4", "title": "SFT training loss by model size", "group": "sft",
         "report": ("Report, Fig. 4: three curves (8B, 70B, 405B), loss axis 0–1.0 over ~4,000 steps (~1,030 steps "
                    "per epoch × 4); the larger the model, the lower the loss (values not printed). Ours: every SFT "
                    "run's logged loss, one line per run, and the tiny sizes' final and held-out losses."),
         "panels": [{"kind": "line", "title": "training loss per SFT run (ours)", "x": "train/global_step",
                     "y": ["train/loss"]},
                    {"kind": "table", "title": "final and held-out loss by size (ours)", "key": "fig4_table"},
                    {"kind": "image", "title": "Fig. 4 (ours)", "key": "fig4"}]},
        {"item": "Table 2", "title": "Per-epoch scores and checkpoint selection", "group": "sft",
         "report": _table2(),
         "panels": [{"kind": "table", "title": "Table 2 (ours: stand-in groups by epoch)", "key": "table2_ours"},
                    {"kind": "scalar", "title": "selected epoch (ours)", "key": "selected_epoch"},
                    {"kind": "scalar", "title": "selected epoch (report)", "key": "report_selected_epoch"}]},
        {"item": "Fig. 5", "title": "DPO reward margins", "group": "dpo",
         "report": ("Report, Fig. 5 (8B): one curve of the reward margin (chosen minus rejected reward), y axis 0–4 "
                    "over ~1,200 steps (values not printed). Ours: the margin our LoRA DPO logs each step."),
         "panels": [{"kind": "line", "title": "reward margin (ours)", "x": "Step", "y": ["train/rewards/margins"]},
                    {"kind": "line", "title": "reward accuracy (ours)", "x": "Step", "y": ["train/rewards/accuracies"]},
                    {"kind": "image", "title": "Fig. 5 (ours)", "key": "fig5"}]},
        {"item": "Table 5", "title": "Benchmarks", "group": "eval",
         "report": _table5(),
         "panels": [{"kind": "table", "title": "stand-in scores by stage (ours)", "key": "scores"},
                    {"kind": "image", "title": "stand-in groups by stage (ours)", "key": "groups"}]},
    ]


# ------------------------------------------------------------------------------ checking


def logged_keys(run: dict) -> dict[str, str]:
    """``{key: kind}`` for one run as ``tracking.read_offline_run`` returns it: tables and
    images by their ``_type`` (their ``path``, ``sha256``... sub-keys are not metrics), numbers
    logged over steps as history, the rest of the summary as summary.

    >>> logged_keys({"history": [{"train/loss": 1.0, "fig/_type": "image-file", "fig/path": "a.png"}],
    ...              "summary": {"best": 2, "_runtime": 3}})
    {'fig': 'image', 'train/loss': 'history', 'best': 'summary'}
    """
    media = {"table-file": "table", "image-file": "image"}
    rows = [(r, "history") for r in run["history"]] + [(run["summary"], "summary")]
    out = {key[: -len("/_type")]: media[v] for row, _ in rows for key, v in row.items()
           if key.endswith("/_type") and isinstance(v, str) and v in media}
    media_prefixes = tuple(k + "/" for k in out)
    for row, kind in rows:
        for key in row:
            if not key.startswith("_") and not key.startswith(media_prefixes):
                out.setdefault(key, kind)
    return out


def read_runs(folder: str | Path) -> dict[str, dict[str, str]]:
    """``{group: {key: kind}}`` over the W&B run folders in ``folder`` (``offline-run-*``, ``run-*``)."""
    from hermes3.core.tracking import read_offline_run

    folder = Path(folder)
    dirs = sorted(p for p in folder.glob("*run-*") if p.is_dir() and list(p.glob("run-*.wandb")))
    if not dirs:
        raise Hermes3Error(f"{folder}: no W&B runs (expected offline-run-*/run-*.wandb folders, e.g. "
                           "runs/wandb/wandb after `make demo`)")
    out: dict[str, dict[str, str]] = {}
    for d in dirs:
        run = read_offline_run(d)
        keys = out.setdefault(run.get("group") or "", {})
        for k, kind in logged_keys(run).items():
            if keys.get(k) != "history":  # a key logged as history in one run is plottable
                keys[k] = kind
    return out


def needed(panel: dict) -> list[tuple[str, str]]:
    """``(kind, key)`` pairs a panel reads (``Step`` is W&B's own step axis)."""
    if panel["kind"] == "line":
        return [(NEEDS["line"], k) for k in [*panel["y"], panel["x"]] if k != "Step"]
    return [(NEEDS[panel["kind"]], panel["key"])]


def unlogged(secs: list[dict], logged: dict[str, dict[str, str]]) -> list[str]:
    """One message per panel key that no run of the section's group logged with the right kind
    (a summary panel also takes a history key: W&B keeps its last value as the summary)."""
    problems = []
    for s in secs:
        have = logged.get(s["group"], {})
        for p in s["panels"]:
            for kind, key in needed(p):
                got = have.get(key)
                if got == kind or (kind == "summary" and got == "history"):
                    continue
                as_ = f" (logged as {got})" if got else ""
                problems.append(f"{s['item']}: {kind} {key!r} is not logged by any run in group {s['group']!r}{as_}")
    return problems


# ------------------------------------------------------------------------------ W&B objects


def _panel(p: dict):
    import wandb_workspaces.reports.v2 as wr

    kind = p["kind"]
    if kind == "line":
        return wr.LinePlot(title=p["title"], x=p["x"], y=list(p["y"]), groupby="Name")
    if kind == "scalar":
        return wr.ScalarChart(title=p["title"], metric=wr.SummaryMetric(p["key"]))
    if kind == "table":
        return wr.WeavePanelSummaryTable(table_name=p["key"])
    if kind == "table_chart":  # W&B's stock line chart over two columns of a logged table
        return wr.CustomChart(query={"summaryTable": {"tableKey": p["key"]}}, chart_name="wandb/line/v0",
                              chart_fields={"x": p["x"], "y": p["y"]})
    return wr.MediaBrowser(title=p["title"], media_keys=[p["key"]])


def build(secs: list[dict], entity: str, project: str = PROJECT, title: str = "Hermes 3 reproduced"):
    """The ``wandb_workspaces`` Report: per section a heading naming the report item, the
    report's numbers, and a panel grid over the runs of the section's group."""
    import wandb_workspaces.reports.v2 as wr

    blocks = [wr.MarkdownBlock("Each section names a figure or table of the Hermes 3 technical report "
                               "(arXiv:2408.11857), quotes the report's numbers, and shows ours from the "
                               "runs logged by `hermes3` (project groups = report items).")]
    for s in secs:
        runset = wr.Runset(entity=entity, project=project, name=s["group"], filters=f"Group = '{s['group']}'")
        blocks += [wr.H2(f"{s['item']}: {s['title']}"), wr.MarkdownBlock(s["report"]),
                   wr.PanelGrid(runsets=[runset], panels=[_panel(p) for p in s["panels"]])]
    return wr.Report(project=project, entity=entity, title=title,
                     description="Report numbers beside ours, per figure and table", blocks=blocks)


def main(args) -> int:
    """``hermes3 wandb-report`` (arguments from ``hermes3.cli.main``)."""
    secs = sections()
    if args.check:
        folder = resolve(args.check)  # runs/... lies under $HERMES3_RUNS
        problems = unlogged(secs, read_runs(folder))
        if problems:
            raise Hermes3Error(f"{folder}: {len(problems)} panel keys have no data: " + "; ".join(problems))
        n = sum(len(s["panels"]) for s in secs)
        print(f"all {n} panels of {len(secs)} sections find their keys in the runs under {folder}")
    offline = args.offline or not (os.environ.get("WANDB_API_KEY") or args.entity)
    if offline:
        out = Path(args.out) if args.out else runs("wandb", "report.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        spec = {"project": args.project, "entity": args.entity, "sections": secs}
        out.write_text(json.dumps(spec, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"offline: wrote the report spec ({len(secs)} sections) to {out}; after `wandb sync`, publish it with "
              "`hermes3 wandb-report --entity YOUR_ENTITY` (WANDB_API_KEY set)")
        return 0
    import wandb

    entity = args.entity or wandb.Api().default_entity
    report = build(secs, entity, args.project)
    try:
        report.save()
    except Exception as e:  # network and auth errors arrive as many exception types
        raise Hermes3Error(f"W&B {entity}/{args.project}: cannot save the report "
                           f"({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None
    print(f"published: {report.url}", file=sys.stdout)
    return 0
