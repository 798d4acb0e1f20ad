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
# # 03 · Learning-rate search (report Fig. 2)
#
# **Reproduces:** Fig. 2 — "Learning rate sweep on GPT4All": 8B models trained to completion at
# LR ∈ {5, 6, 7, 8, 9, 10} × 1e-6 (grid inferred from the axis ticks), one panel per GPT4All task,
# the selected 7e-6 as a red line. Per-point values are not in the report (image only).
#
# **Here:** `Recipe.lr_search` fine-tunes the tiny-m base once per LR of the preset's grid (one epoch
# each) and scores each run on the **GPT4All stand-in**: GPT4All's tasks are scored by log-likelihood,
# and so is ours — the mean log-probability per token that the model gives the reference answers of
# the held-out *general* and *domain-expert* items (higher is better; continuous, so a few hundred
# items separate the LRs, where 0/1 accuracy of a tiny model moves in steps of one item). The LR is
# **chosen on the validation split**; each point carries its 95% bootstrap interval over items, and the
# selection's lead over both ends of the grid is a paired bootstrap interval. The same runs are then
# scored on the **test split**, which the choice never saw, to check that the finding holds there. The
# selected LR is written to the run manifest, and notebook 05's SFT run trains at it.
#
# Independent runs go side by side (`hermes3.recipe.executor`: one process per core, one thread each):
# the three base sizes of Fig. 4 are pre-trained here, then the LR runs.

# %% tags=["parameters"]
scale = "smoke"  # smoke | demo | full (presets in hermes3/recipe/presets.py)
wandb_mode = "offline"

# %%
import pandas as pd
from IPython.display import display

from hermes3.core import tracking
from hermes3.recipe.notebook import setup
from hermes3.recipe.plots import plot_lr_search

recipe, FIGURES = setup(scale)
scores, per_item, best, test = recipe.lr_search()
sel = recipe.selection("lr_search")
cols = ["lr", *recipe.preset.lr_categories, "gpt4all_standin", "gpt4all_standin_lo", "gpt4all_standin_hi", "items", "train_loss"]
display(scores[cols].round(4))
print(f"selected LR: {best:g} (interior of the grid: {sel['interior']})")

# %% [markdown]
# ## The selection's lead over both ends of the grid (validation; paired bootstrap over items)

# %%
leads = pd.DataFrame([{"vs lr": k, "lead (mean log-prob per token)": v["lead"], "95% CI low": v["ci95"][0],
                       "95% CI high": v["ci95"][1], "CI excludes 0": v["ci95"][0] > 0} for k, v in sel["leads"].items()])
display(leads.round(4))

# %% [markdown]
# ## Fig. 2 (ours)

# %%
fig = plot_lr_search(scores, [*recipe.preset.lr_categories, "gpt4all_standin"], best, path=FIGURES / "fig2_lr_search.png",
                     report_note="7e-6 selected for 8B on GPT4All", ylabel="mean log-prob / token")
run = tracking.start("lr-search", f"fig2-{scale}", {"lrs": list(recipe.preset.lrs)}, mode=wandb_mode)
tracking.log_table(run, "lr_search", scores)
tracking.log_figure(run, "fig2", fig)

# %% [markdown]
# ## The same runs on the test split
# The choice above read only validation items; here is the score of each run on the test items.

# %%
display(test[cols].round(4))
test_best = recipe.manifest()["stages"]["lr_search"]["results"]["test_best_lr"]
print(f"best LR on test: {test_best:g}; selected on validation: {best:g} "
      f"({'the same' if test_best == best else 'they differ'})")

# %% [markdown]
# ## Report vs ours

# %%
display(pd.DataFrame({"source": ["report (8B, GPT4All, accuracy)", f"ours ({scale}, GPT4All stand-in, log-likelihood)"],
                      "LR grid": ["5e-6 ... 1e-5", ", ".join(f"{x:g}" for x in recipe.preset.lrs)],
                      "selected LR": ["7e-6 (interior)", f"{best:g} ({'interior' if sel['interior'] else 'edge'})"]}))
run.summary.update({"selected_lr": best, "test_best_lr": test_best, "report_selected_lr": 7e-6})
run.finish()
