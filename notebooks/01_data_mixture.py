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
# # 01 · Data mixture (report Table 1, §3)
#
# **Reproduces:** Table 1 — ~390M tokens in eight categories (General Instructions 60.6%, Domain
# Expert 12.8%, Math 6.7%, Roleplaying 6.1%, Coding 4.5%, Tool Use/Agentic/RAG 4.3%, Content
# Generation 3.0%, Steering and Alignment 2.5%), of which **69% are output tokens** that carry the
# loss; and the five filters of §3 (length thresholds, refusals, malformed responses, missing/empty
# turns, preference for the strongest sources).
#
# **Here:** `hermes3 data build` mixes real permissive sources (ShareGPT, GSM8K, glaive and Hermes
# function-calling records) with seeded synthetic Hermes-style tasks whose answers a program checks,
# sampled by tokens to the Table 1 shares (`configs/data/table1.yaml`). The report's dataset is not
# public; ours is a stand-in a ~5M-parameter model can learn on a CPU. The demo **trains** on
# `configs/data/demo.yaml`: the same categories with Tool Use raised to 30%, so that function calling
# is learnable within the demo's minutes (shown below, beside Table 1). Preference pairs (HH-RLHF)
# feed DPO only, never SFT targets.

# %% tags=["parameters"]
scale = "smoke"  # smoke | demo | full (presets in hermes3/recipe/presets.py)
wandb_mode = "offline"

# %%
import pandas as pd
from IPython.display import display

from hermes3.core import tracking
from hermes3.recipe.notebook import setup
from hermes3.data.build import load_eval, load_sft
from hermes3.data.decontam import contamination
from hermes3.data.mixture import REPORT_OUTPUT_SHARE
from hermes3.recipe.plots import plot_category_lengths, plot_table1

recipe, FIGURES = setup(scale)
t1_dir, train_dir = recipe.table1_data(), recipe.data()
run = tracking.start("data", f"table1-{scale}", {"table1": str(t1_dir), "train": str(train_dir)}, mode=wandb_mode)

# %% [markdown]
# ## Table 1: report vs ours (the report's shares)

# %%
table = pd.read_csv(t1_dir / "table1.csv")
display(table)
tracking.log_table(run, "table1", table)
tracking.log_figure(run, "table1_plot", plot_table1(table, path=FIGURES / "table1_mixture.png"))

# %% [markdown]
# ## Output-token share: report vs ours

# %%
ours = table.iloc[-1]["ours_output_%"] / 100
share = pd.DataFrame({"source": ["report (Hermes 3, 390M tokens)", f"ours ({scale}, Table 1 shares)"],
                      "output-token share": [REPORT_OUTPUT_SHARE, ours],
                      "points from the report": [0.0, round(100 * (ours - REPORT_OUTPUT_SHARE), 1)]})
display(share)
run.summary.update({"output_token_share": ours, "report_output_token_share": REPORT_OUTPUT_SHARE})

# %% [markdown]
# ## The demo's training mixture (Tool Use raised to 30%)

# %%
train = pd.read_csv(train_dir / "table1.csv")
display(train[["category", "report_%", "ours_%", "ours_tokens", "ours_conversations", "ours_output_%"]])
tracking.log_table(run, "training_mixture", train)

# %% [markdown]
# ## The five filters
# What each removed and why (real sources are filtered as a pool; synthetic tasks one by one).

# %%
filters = pd.read_csv(t1_dir / "filters.csv")
display(filters)
tracking.log_table(run, "filters", filters)

# %% [markdown]
# ## Conversation lengths per category

# %%
tracking.log_figure(run, "lengths", plot_category_lengths(load_sft(t1_dir), path=FIGURES / "table1_lengths.png"))

# %% [markdown]
# ## Decontamination: held-out evaluation items vs the training mixture
# As open-instruct checks before training: exact prompt matches and shared 13-word n-grams
# (`hermes3.data.decontam`). Exact matches must be 0; n-gram overlap of templated synthetic answers
# measures how templated the data is, not leakage.

# %%
c = contamination(load_sft(train_dir), load_eval(train_dir))
display(pd.DataFrame([c]))
run.summary.update({f"decontamination/{k}": v for k, v in c.items()})
run.finish()
