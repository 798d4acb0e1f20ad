import os, sys
os.environ["HERMES3_RUNS"] = "/work/demo-run18/runs"; os.environ["WANDB_MODE"] = "disabled"; os.environ["TQDM_DISABLE"] = "1"
from dataclasses import replace
import json
from hermes3.recipe import Recipe, _evaluate_job, GROUPS
from hermes3 import pipeline
from hermes3.dpo import DPOConfig
from hermes3.config import load_config
from hermes3.paths import resolve
from hermes3.compare import paired
from hermes3.evaluate import STANDIN_GROUPS, tool_call_items
r = Recipe("demo")
ckpt = r.selected_checkpoint()
ra = r.evaluate("SFT")
calls = tool_call_items(r.data(), r.preset.eval_limit)
for lr in map(float, sys.argv[1:]):
    cfg = load_config(DPOConfig, resolve("configs/dpo/tiny.yaml"), [])
    cfg = replace(cfg, model=str(ckpt), data=str(r.data()), output_dir=f"/work/exp/dpo-{lr:g}", name=f"try-{lr:g}", lr=lr)
    out = pipeline.dpo(cfg)
    held = json.loads((out / "heldout.json").read_text())
    after = held.get("after", {})
    acc = sum(m > 0 for m in after["margins"]) / len(after["margins"])
    rb = _evaluate_job((str(out / "merged"), *r._eval_args("SFT")[1:]))
    t = paired(ra, rb, {g: list(STANDIN_GROUPS[g]) for g in GROUPS},
               subsets={"tool calls": ("hermes_tool_use", calls), "tool calls: right functions": (r._functions, calls)})
    print(f"=== DPO lr {lr:g}: held-out accuracy {acc:.3f}, margin {after.get('rewards/margins')}", flush=True)
    print(t.to_string(), flush=True)
