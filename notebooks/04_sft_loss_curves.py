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
# # 04 · SFT loss curves (report Fig. 4)
#
# **Reproduces:** Fig. 4 — "Training loss of SFT phase" for 8B, 70B and 405B over ~4,000 steps (4 epochs
# at ~1,030 steps per epoch for 8B/70B): the larger the model, the lower its loss. Curve values are not
# in the report (image only).
#
# **Here:** three tiny sizes stand in for the three Llama sizes — `tiny-s`, `tiny-m`, `tiny-l` — each
# pre-trained on the plain text of the training mixture **with the same token budget**, then fine-tuned
# one epoch with the same SFT recipe at the LR that notebook 03 selected (from the manifest). Beside the
# training loss, each model's **held-out loss** on the reference answers of the held-out items of all
# eight categories (`hermes3.eval.heldout`).

# %% tags=["parameters"]
scale = "smoke"  # smoke | demo | full (presets in hermes3/recipe/presets.py)
wandb_mode = "offline"

# %%
import pandas as pd
from IPython.display import display

from hermes3.core import tracking
from hermes3.recipe.notebook import row_table, setup
from hermes3.recipe.plots import plot_loss_curves
from hermes3.recipe.stages import FINAL_STEPS

recipe, FIGURES = setup(scale)
curves = recipe.loss_curves()
train_col = f"final train loss (last {FINAL_STEPS} steps)"  # the end point of Fig. 4's rolling mean
table = row_table({k: {"parameters": v["parameters"], "steps": len(v["metrics"]), train_col: v["final_train_loss"],
                       "held-out loss": v["heldout_loss"], "held-out items": v["items"]} for k, v in curves.items()})
display(table.round(4))
train_order = list(table[train_col]) == sorted(table[train_col], reverse=True)
held_order = list(table["held-out loss"]) == sorted(table["held-out loss"], reverse=True)
print(f"larger model -> lower final training loss: {train_order}; lower held-out loss: {held_order}")

# %%
fig = plot_loss_curves(curves, path=FIGURES / "fig4_loss_curves.png", smooth=FINAL_STEPS)
run = tracking.start("sft", f"fig4-{scale}", {"sizes": list(curves), "lr": recipe.selected_lr()}, mode=wandb_mode)
tracking.log_figure(run, "fig4", fig)
tracking.log_table(run, "fig4_table", table.reset_index())
run.finish()

# %% [markdown]
# ## Report vs ours

# %%
display(pd.DataFrame({"source": ["report (Fig. 4)", f"ours ({scale})"],
                      "sizes": ["8B, 70B, 405B", ", ".join(curves)],
                      "larger model lower loss": ["yes (curves ordered by size)", f"train: {train_order}, held-out: {held_order}"]}))
