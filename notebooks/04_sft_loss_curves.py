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
# training loss, each model's **held-out loss** on the reference answers of the **test split**'s items
# of all eight categories (`hermes3.eval.heldout`), and on those of them whose answer shares no 13-gram
# with any training answer. The final training loss is the end point of the figure's rolling mean; its
# window is a rule of the preset (`final_steps`), fixed before the runs.

# %% tags=["parameters"]
scale = "smoke"  # smoke | demo | full (presets in hermes3/recipe/presets.py)
wandb_mode = "offline"

# %%
import pandas as pd
from IPython.display import display

from hermes3.core import tracking
from hermes3.recipe.notebook import setup
from hermes3.recipe.plots import plot_loss_curves

recipe, FIGURES = setup(scale)
window = recipe.preset.final_steps
curves = recipe.loss_curves()
train_col = f"final train loss (last {window} steps)"  # the end point of Fig. 4's rolling mean
table = pd.DataFrame([{"size": k, "parameters": v["parameters"], "steps": len(v["metrics"]),
                       train_col: v["final_train_loss"], "test loss": v["heldout_loss"], "test items": v["items"],
                       "test loss, no answer overlap": v["heldout_loss_no_overlap"],
                       "items, no answer overlap": v["items_no_overlap"]} for k, v in curves.items()]).set_index("size")
display(table.round(4))
ordered = {col: list(table[col]) == sorted(table[col], reverse=True)
           for col in (train_col, "test loss", "test loss, no answer overlap")}
print("larger model -> lower loss: " + "; ".join(f"{col}: {ok}" for col, ok in ordered.items()))

# %%
fig = plot_loss_curves(curves, path=FIGURES / "fig4_loss_curves.png", smooth=window)
run = tracking.start("sft", f"fig4-{scale}", {"sizes": list(curves), "lr": recipe.selected_lr()}, mode=wandb_mode)
tracking.log_figure(run, "fig4", fig)
tracking.log_table(run, "fig4_table", table.reset_index())
run.finish()

# %% [markdown]
# ## Report vs ours

# %%
display(pd.DataFrame({"source": ["report (Fig. 4)", f"ours ({scale})"],
                      "sizes": ["8B, 70B, 405B", ", ".join(curves)],
                      "larger model lower loss": ["yes (curves ordered by size)",
                                                  ", ".join(f"{col}: {ok}" for col, ok in ordered.items())]}))
