"""The job plan of a scale, printed before anything is submitted (``hermes3 reproduce --dry-run``):
every training and evaluation job the notebooks would run, what it waits for, the nodes and GPUs
it asks for, its time limit and the memory per GPU that ``hermes3.train.plan`` gives its recipe."""

from __future__ import annotations

from hermes3.recipe.cluster import executor_config


def job_plan(recipe) -> list[dict]:
    """``[{stage, job, after, nodes x tasks, GPUs, time limit, memory/GPU}]`` of ``recipe``
    (a ``hermes3.recipe.stages.Recipe``), from its preset and YAML recipes; nothing runs."""
    from dataclasses import replace

    from hermes3.core.config import load_config
    from hermes3.core.paths import resolve
    from hermes3.train.dpo import DPOConfig

    p, rows = recipe.preset, []

    def add(stage, job, after, res, cfg=None):
        rows.append({"stage": stage, "job": job, "after": after, "nodes x tasks": f"{res.nodes} x {res.tasks_per_node}",
                     "GPUs": res.nodes * res.gpus_per_node, "time limit": _hours(res.timeout_min),
                     "memory/GPU (plan)": _memory(cfg) if cfg is not None and p.gpus else ""})

    def sft_cfg(label, lr):
        yaml = p.size_sft.get(label, p.sft)
        return recipe._sft_config(yaml, [*p.sft_overrides, *p.lr_overrides], lr=lr)

    data = "data" if not p.data.endswith(".yaml") else f"data ({p.data})"
    add("01 data", f"{data}", "", recipe._job_resources())
    tiny = [k for k, v in p.bases.items() if v.startswith("tiny-")]
    for label in tiny:
        add("03 bases", f"pre-train base {p.bases[label]}", "data", recipe._job_resources())
    for lr in p.lrs:
        cfg = sft_cfg(p.main, lr)
        add("03 LR search (Fig. 2)", f"SFT {_slug(p.main)} lr {lr:g}, 1 epoch", f"base {_slug(p.main)}" if tiny else "",
            recipe._train_resources(cfg), cfg)
    for label in p.bases:
        if label != p.main:
            cfg = sft_cfg(label, p.lrs[0])
            add("04 loss curves (Fig. 4)", f"SFT {_slug(label)} at the selected LR, 1 epoch", "LR search",
                recipe._train_resources(cfg), cfg)
    main = recipe._sft_config(p.sft, p.sft_overrides)
    add("05 main SFT", f"SFT {_slug(p.main)}, {main.epochs:g} epochs at the selected LR", "LR search",
        recipe._train_resources(main), main)
    add("05 epoch selection (Table 2)", f"evaluate {int(main.epochs)} epoch checkpoints ({p.epoch_metric})",
        "main SFT", recipe._job_resources())
    dpo = replace(load_config(DPOConfig, resolve(p.dpo), list(p.dpo_overrides)))
    add("06 DPO (Fig. 5, Table 4)", f"LoRA DPO {_slug(p.main)} from the selected epoch", "epoch selection",
        recipe._train_resources(dpo), dpo)
    add("07 FP8", "FP8_DYNAMIC of the merged DPO model", "DPO", recipe._job_resources())
    add("08 benchmarks (Table 5)", f"evaluate base, SFT, SFT+DPO, FP8 on {p.eval_suite}", "FP8", recipe._job_resources())
    return rows


def describe(recipe) -> str:
    """The job plan as text, headed by where it would run."""
    import pandas as pd

    cfg = executor_config()
    where = cfg.backend + (f" (partition {cfg.partition})" if cfg.partition else "")
    table = pd.DataFrame(job_plan(recipe)).to_string(index=False)
    return f"scale {recipe.scale} on {where}; nothing submitted (--dry-run)\n{table}"


def _slug(label: str) -> str:
    return label.split(" ")[0]


def _hours(minutes: int) -> str:
    return f"{minutes // 60} h" if minutes % 60 == 0 and minutes >= 60 else f"{minutes} min"


def _memory(cfg) -> str:
    from hermes3.train.plan import recipe_plan

    planner, kw = recipe_plan(cfg)
    plan = planner(cfg.model_config, cfg.cluster, **kw)
    return f"{plan.memory['total']:.1f} GB" + ("" if plan.fits else " (does not fit)")
