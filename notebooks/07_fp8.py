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
# # 07 · FP8 for vLLM (report §5, 405B card)
#
# **Reproduces:** the report's FP8 evaluation of the 405B models — llm-compressor round-to-nearest weights
# with per-channel scales and per-token dynamic activation scales, for vLLM — and the 405B card's sizes
# (>800 GB in FP16, ~430 GB in FP8).
#
# **Here:** `Recipe.fp8` writes the same compressed-tensors `FP8_DYNAMIC` checkpoint shard by shard from
# **the merged DPO model of notebook 06** (read from the manifest); we report each model's stored dtypes (read
# from its safetensors headers) and bytes, perplexity and KL of FP8 against the unquantized model, the
# stand-in scores unquantized vs FP8 on the same items (McNemar), and the bf16/FP8 weight sizes of the
# Llama 3.1 8B/70B/405B shapes computed on the meta device.
#
# **FP8 on the CPU is an emulation.** The weights are stored in FP8 (the bytes saved are real), but CPUs have
# no FP8 matmul kernels: the weights are dequantized for every matmul. Quality is measured here; speed is
# not (vLLM's FP8 kernels need a GPU).

# %% tags=["parameters"]
scale = "smoke"  # smoke | demo | full (presets in hermes3/recipe/presets.py)
wandb_mode = "offline"

# %%
import pandas as pd
from IPython.display import display

from hermes3.core import tracking
from hermes3.recipe.notebook import rounded, row_table, setup
from pathlib import Path

import yaml

from hermes3.data.build import load_eval
from hermes3.convert.fp8 import FP8_COMPUTE, quality, stored_dtypes, weight_bytes
from hermes3.core.paths import REPO
from hermes3.recipe import manifest

recipe, FIGURES = setup(scale)
fp8_dir = recipe.fp8()
src = manifest.resolve_path(recipe.manifest_path, recipe.manifest()["stages"]["fp8"]["inputs"]["model"])
size = lambda d: sum(f.stat().st_size for f in Path(d).glob("*.safetensors"))  # noqa: E731
models = {"unquantized": src, "FP8": fp8_dir}
display(row_table({name: {"folder": str(d), "stored dtypes (share of bytes)": stored_dtypes(d), "MB": size(d) / 1e6,
                          "vs unquantized": size(d) / size(src)} for name, d in models.items()}).round(3))

# %% [markdown]
# ## Quality: perplexity and KL against the unquantized model, and the stand-ins on the same items

# %%
texts = [it["reference"] for it in load_eval(recipe.data(), split="test")][: 20 if scale == "smoke" else 100]
q = quality(src, fp8_dir, texts)
display(row_table({"FP8 vs unquantized": {**q, "FP8 compute": FP8_COMPUTE}}).round(4))
scores = recipe.compare("SFT+DPO", "SFT+DPO FP8").rename(columns={"A": "unquantized", "B": "FP8 (emulated)"})
display(rounded(scores))

# %% [markdown]
# ## Llama 3.1 shapes: weight bytes in bf16 and FP8

# %%
rows = []
for s in ("8b", "70b", "405b"):
    arch = yaml.safe_load((REPO / f"configs/sft/llama3.1-{s}.yaml").read_text())["model_config"]
    rows.append({"model": f"Llama 3.1 {s.upper()}", **weight_bytes(arch)})
shapes = pd.DataFrame(rows)
shapes["report"] = ["", "", "FP16 > 800 GB, FP8 ~430 GB (405B card, VRAM)"]
display(shapes.round(3))
run = tracking.start("fp8", f"fp8-{scale}", {"model": str(src)}, mode=wandb_mode)
tracking.log_table(run, "scores", scores.reset_index())
tracking.log_table(run, "llama_shapes", shapes)
run.summary.update(q)
run.finish()
