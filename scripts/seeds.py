"""The demo's key findings over several seeds (data draw and initialisation), measured by hand.

    python scripts/seeds.py 1 2        # seeds besides make demo's 0; about 20 minutes each on 2 cores

Each seed runs the demo preset under ``runs/seeds/<seed>`` with the data build, the base models'
initialisation and data order, and the SFT runs seeded by it, through the stages the findings need
(no FP8, no notebooks). Prints one row per seed, and ``runs/seeds/summary.csv``: Fig. 2's choice on
validation and best LR on test, Fig. 4's order by size on training and test loss, SFT vs base on test
answer likelihood, and SFT+DPO vs SFT on the test items (McNemar). ``make demo`` stays one seed;
docs/findings.md reports the spread.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from hermes3.core.paths import runs
from hermes3.recipe.stages import Recipe


def findings(seed: int) -> dict:
    r = Recipe("demo", root=runs("seeds", str(seed)))
    p = r.preset
    if seed:  # seed 0 is make demo's own recipe, bit for bit
        r.preset = replace(p, data_overrides=(f"seed={seed}",), base_overrides=(*p.base_overrides, f"seed={seed}"),
                           sft_overrides=(*p.sft_overrides, f"seed={seed}"))
    _, _, lr, _ = r.lr_search()
    sel = r.selection("lr_search")
    test_best = r.manifest()["stages"]["lr_search"]["results"]["test_best_lr"]
    curves = r.loss_curves()
    ordered = {k: [v[k] for v in curves.values()] for k in ("final_train_loss", "heldout_loss", "heldout_loss_no_overlap")}
    lk = r.compare_likelihood("base", "SFT").loc[("test", "all")]
    dpo = r.compare("SFT", "SFT+DPO").loc["all"]
    return {"seed": seed, "selected_lr": lr, "interior": sel["interior"], "test_best_lr": test_best,
            **{f"fig4_order_{k}": v == sorted(v, reverse=True) for k, v in ordered.items()},
            "sft_gain_logprob": lk["diff"], "sft_gain_ci95": f"{lk['ci95_low']:+.3f}..{lk['ci95_high']:+.3f}",
            "epoch": r.selection("epoch_selection")["epoch"],
            "dpo_gained": int(dpo["B only"]), "dpo_lost": int(dpo["A only"]), "dpo_p": dpo["p (McNemar)"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("seeds", nargs="+", type=int)
    args = ap.parse_args(argv)
    import pandas as pd

    rows = []
    for seed in args.seeds:
        rows.append(findings(seed))
        print(pd.DataFrame(rows).to_string(index=False), flush=True)
    out = runs("seeds", "summary.csv")
    table = pd.DataFrame(rows)
    if out.exists():  # keep earlier seeds' rows
        table = pd.concat([pd.read_csv(out)[lambda d: ~d.seed.isin(args.seeds)], table]).sort_values("seed")
    table.to_csv(out, index=False)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
