"""The README's "report vs ours" table, written from a run's manifest, never typed by hand.

``hermes3 reproduce --scale demo`` ends by writing ``figures/gallery.md`` from
``<runs>/demo/manifest.json`` and copying it into README.md between the markers
``<!-- gallery:start -->`` and ``<!-- gallery:end -->``; a test checks the two agree.

>>> replace_block("a\\n<!-- gallery:start -->\\nold\\n<!-- gallery:end -->\\nb", "new")
'a\\n<!-- gallery:start -->\\nnew\\n<!-- gallery:end -->\\nb'
"""

from __future__ import annotations

import re
from pathlib import Path

START, END = "<!-- gallery:start -->", "<!-- gallery:end -->"


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def _paired(rows: list[dict], name: str) -> dict:
    return next(r for r in rows if r["task"] == name)


def gallery(manifest: dict) -> str:
    """A markdown table: report item, the report's finding, ours with its statistic."""
    st = manifest["stages"]
    lines = ["| report item | report | ours (demo scale, this commit's `make demo`; choices on the validation split, "
             "findings on the test split) |", "|---|---|---|"]
    t1 = st["table1"]["results"]
    lines.append(f"| Table 1 mixture | 390M tokens, 8 categories, 69% output tokens | Table 1 shares within "
                 f"{t1['max_share_gap_points']:.1f} pt, **{100 * t1['output_share']:.1f}% output tokens** |")
    dc = st["data"]["results"]["decontamination"]
    lines.append("| Decontamination (open-instruct's check) | | " + "; ".join(
        f"{split} {d['items']} items: {d['exact']} exact prompt matches, {d['ngram']} share a {d['n']}-word n-gram "
        f"with a training prompt and {d['answer_ngram']} with a training answer" for split, d in dc.items())
        + " (templated tasks); findings are also shown on the test items without answer overlap |")
    lr = st["lr_search"]
    sel = lr["selection"]
    leads = "; ".join(f"+{v['lead']:.3f} vs {k} (95% CI {v['ci95'][0]:+.3f}..{v['ci95'][1]:+.3f})"
                      for k, v in sel["leads"].items())
    grid = ", ".join(f"{r['lr']:g}" for r in lr["results"]["scores"])
    where = "interior" if sel["interior"] else "edge"
    test_best = lr["results"]["test_best_lr"]
    lines.append(f"| Fig. 2 LR search | 7e-6 selected, interior of 5e-6..1e-5 (8B, GPT4All) | **{sel['lr']:g}** selected, "
                 f"{where} of {grid} (GPT4All stand-in, log-prob/token, validation): {leads}; best on test: "
                 f"{test_best:g} |")
    lc = st["loss_curves"]["results"]
    lines.append("| Fig. 4 loss curves | larger models lower | " + ", ".join(
        f"{k.split(' ')[0]} ({v['parameters'] / 1e6:.1f}M): train {v['final_train_loss']:.3f}, test "
        f"{v['heldout_loss']:.3f}, test without answer overlap {v['heldout_loss_no_overlap']:.3f}"
        for k, v in lc.items()) + " |")
    es = st["epoch_selection"]
    trade = "groups peak at different epochs" if es["results"]["tradeoff"] else "every group peaks there (no trade-off)"
    lines.append(f"| Table 2 epoch | epoch 3 (70B, Total 83.89) | **{es['selection']['epoch']}** (Total "
                 f"{max(es['results']['total'].values()):.2f} on the validation stand-ins; {trade}); DPO starts from it |")
    cmp = {k.removeprefix("compare/"): v["results"] for k, v in st.items() if k.startswith("compare/")}
    if "base -> SFT" in cmp:
        rows = cmp["base -> SFT"]
        groups = ", ".join(f"{r['task'].removesuffix('_standin')} {100 * r['A']:.0f}->{100 * r['B']:.0f}% "
                           f"(p={_p(r['p (McNemar)'])})" for r in rows if r["task"].endswith("_standin"))
        tc = _paired(rows, "tool calls")
        lk = [r for r in st.get("likelihood/base -> SFT", {}).get("results", []) if r.get("subset") == "test"
              and r["task"].endswith("_standin") or r.get("subset") == "test, no answer overlap" and r["task"] == "all"]
        lk = "; ".join(f"{r['task'].removesuffix('_standin') if r['subset'] == 'test' else 'no answer overlap, all'} "
                       f"{r['A']:.2f} -> {r['B']:.2f} (gain 95% CI {r['ci95_low']:+.2f}..{r['ci95_high']:+.2f}, higher "
                       f"on {r['B higher']}/{r['items']} items, sign test p={_p(r['p (sign test)'])})" for r in lk)
        lk = f"; **test answer log-prob/token**: {lk}" if lk else ""
        fn = next((r for r in rows if r["task"] == "tool calls: right functions"), None)
        fn = (f", right functions chosen {100 * fn['A']:.0f}% -> {100 * fn['B']:.0f}% (p={_p(fn['p (McNemar)'])})"
              if fn else "")
        lines.append(f"| SFT vs base (not in the report) | | generated answers checked: {groups}; **tool calls "
                     f"{100 * tc['A']:.0f}% -> {100 * tc['B']:.0f}%** exact match of {tc['items']} test calls "
                     f"(p={_p(tc['p (McNemar)'])}){fn}{lk} |")
    d = st["dpo"]["results"]
    acc = d["heldout_accuracy"]
    lines.append(f"| Fig. 5 DPO | margin rises to ~4 over 1,200 steps (8B) | held-out margin "
                 f"{d['heldout_before']['rewards/margins']:.2f} -> {d['heldout_after']['rewards/margins']:.2f}, held-out "
                 f"accuracy **{acc['value']:.2f}** (95% CI {acc['ci95'][0]:.2f}..{acc['ci95'][1]:.2f}, {acc['pairs']} pairs) |")
    if "SFT -> SFT+DPO" in cmp:
        lines.append("| Table 4 SFT vs SFT+DPO | small gains at 8B, none at 70B/405B | " + "; ".join(
            f"{label} {100 * a['A']:.1f}% -> {100 * a['B']:.1f}% ({a['B only']} gained, {a['A only']} lost, "
            f"p={_p(a['p (McNemar)'])})" for label, a in (
                (label, _paired(cmp["SFT -> SFT+DPO"], row)) for label, row in (
                    ("all test items", "all"), ("synthetic without answer overlap", "synthetic, no answer overlap"),
                    ("real benchmarks", "real benchmarks")))) + " |")
    if "SFT+DPO -> SFT+DPO FP8" in cmp:
        a = _paired(cmp["SFT+DPO -> SFT+DPO FP8"], "all")
        lines.append(f"| FP8 (405B) | >800 GB -> ~430 GB VRAM, quality kept | all stand-in items {100 * a['A']:.1f}% -> "
                     f"{100 * a['B']:.1f}% ({a['B only']} gained, {a['A only']} lost, p={_p(a['p (McNemar)'])}) |")
    return "\n".join(lines) + "\n"


def replace_block(text: str, block: str) -> str:
    """``text`` with the part between the gallery markers replaced by ``block``."""
    pat = re.compile(re.escape(START) + r"\n.*?\n" + re.escape(END), re.DOTALL)
    if not pat.search(text):
        raise ValueError(f"no {START} ... {END} block in the README")
    return pat.sub(lambda _: f"{START}\n{block.strip()}\n{END}", text)


def write(manifest: dict, figures: Path, readme: Path) -> str:
    """Write ``figures/gallery.md`` and the README block; returns the table."""
    table = gallery(manifest)
    (figures / "gallery.md").write_text(table)
    readme.write_text(replace_block(readme.read_text(), table))
    return table
