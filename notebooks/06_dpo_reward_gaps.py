# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · DPO reward margins (report Fig. 5) and SFT vs SFT+DPO (Table 4)
#
# **Reproduces:** Fig. 5 — the reward margin (chosen minus rejected reward) over ~1,200 DPO steps for
# 8B; Table 4 — 8B SFT vs SFT+DPO on GPT4All, AGIEval, BigBench, TruthfulQA, IFEval and MT-Bench (a
# moderate gain; 70B/405B shipped SFT-only because DPO helped negligibly).
#
# **Here:** `Recipe.dpo` trains the report's LoRA adapter (r 32, α 16, dropout 0.05, all linear layers,
# RMSProp, 9 warmup steps, linear decay, NEFTune α 5; β 0.1 and the sigmoid loss are TRL defaults the
# report does not state) on packed, padding-free preference batches — synthetic pairs whose rejected side
# is a known-wrong answer, broken format, needless refusal or ignored system prompt, plus real HH-RLHF
# pairs — starting from **the checkpoint notebook 05 selected** (read from the manifest). The DPO LR was
# chosen by hand on the validation split (`configs/dpo/tiny.yaml` says how). The reward margin is shown
# on the training pairs and on held-out pairs: the reference pass sees the same NEFTune noise as the
# policy pass, so at the first step the policy equals the reference, every margin is zero and a tie
# counts half. Then SFT vs SFT+DPO on the **test split** (the four stand-in groups, the synthetic items
# with and without answer overlap, the real benchmarks) with a paired McNemar test, whichever way it
# goes.

# %% tags=["parameters"]
scale = "smoke"  # smoke | demo | full (presets in hermes3/recipe/presets.py)
wandb_mode = "offline"

# %%
import pandas as pd
from IPython.display import display

from hermes3.core import tracking
from hermes3.recipe.notebook import rounded, setup
from hermes3.train.dpo import read_metrics
from hermes3.recipe.plots import plot_reward_margins
from hermes3.core.report import report_table

recipe, FIGURES = setup(scale)
dpo_dir = recipe.dpo()
stage = recipe.manifest()["stages"]["dpo"]
print("DPO started from:", stage["inputs"]["model"], f"(chosen by {stage['inputs']['model_from']})")
metrics = read_metrics(dpo_dir)
held = pd.read_csv(dpo_dir / "heldout.csv") if (dpo_dir / "heldout.csv").exists() else None

# %% [markdown]
# ## Fig. 5: reward margins

# %%
fig = plot_reward_margins(metrics, path=FIGURES / "fig5_reward_margins.png", heldout=held)
run = tracking.start("dpo", f"fig5-table4-{scale}", {"sft_model": stage["inputs"]["model"]}, mode=wandb_mode)
tracking.log_figure(run, "fig5", fig)
if held is not None:
    display(held[["step", "rewards/margins", "rewards/accuracies", "loss"]].round(4))

# %% [markdown]
# ## Held-out preference accuracy, with its 95% interval (bootstrap over held-out pairs)

# %%
res = stage["results"]
acc = res["heldout_accuracy"]
display(pd.DataFrame([{"held-out pairs": acc["pairs"], "accuracy": acc["value"], "95% CI low": acc["ci95"][0],
                       "95% CI high": acc["ci95"][1], "margin before": res["heldout_before"]["rewards/margins"],
                       "margin after": res["heldout_after"]["rewards/margins"]}]).round(3))
run.summary.update({"heldout/accuracy": acc["value"], "heldout/accuracy_ci_low": acc["ci95"][0]})

# %%
# By pair type: HH-RLHF's human preferences, then synthetic pairs by what is wrong with their rejected side
display(pd.DataFrame(res["heldout_accuracy_by_type"]).round(3))

# %% [markdown]
# ## Table 4: SFT vs SFT+DPO on the same test items (McNemar), and the report's 8B numbers

# %%
t4 = recipe.compare("SFT", "SFT+DPO").rename(columns={"A": "SFT", "B": "SFT+DPO"})
display(rounded(t4))
print("The report's Table 4 (8B), for comparison:")
display(report_table(4).set_index("model"))
tracking.log_table(run, "table4_ours", t4.reset_index())
run.finish()
