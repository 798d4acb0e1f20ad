"""The three scales of the recipe, in one place: ``smoke`` (tests, seconds), ``demo`` (the CPU
reproduction, ``make demo``) and ``full`` (Llama 3.1 on GPUs, the report's settings).

A preset names the YAML recipes each stage starts from and the few settings a scale changes
(``key=value`` overrides, the same syntax as the command line). ``hermes3.recipe.stages`` runs the
stages from it; the notebooks only pick a scale. Nothing here is read from a notebook cell.

>>> PRESETS["demo"].lrs
(0.0001, 0.0003, 0.001, 0.003, 0.01)
>>> PRESETS["full"].lrs  # the report's Fig. 2 grid (8B)
(5e-06, 6e-06, 7e-06, 8e-06, 9e-06, 1e-05)
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Preset:
    """Everything a scale decides. Paths are relative to the checkout (``hermes3.core.paths``)."""

    scale: str = field(metadata={"help": "smoke | demo | full"})
    data: str = field(metadata={"help": "DataConfig YAML of the training mixture"})
    table1_data: str = field(metadata={"help": "DataConfig YAML at the report's Table 1 shares (notebook 01)"})
    bases: dict = field(metadata={
        "help": "Fig. 4 sizes: label -> tiny size (pre-trained here) or a model folder / Hub id"})
    main: str = field(metadata={"help": "the label in `bases` that the main line (SFT -> DPO -> FP8) starts from"})
    data_overrides: tuple = field(default=(), metadata={
        "help": "DataConfig overrides of the training mixture (`seed=1`: another data draw; scripts/seeds.py)"})
    base_overrides: tuple = field(default=(), metadata={
        "help": "BaseConfig overrides, the same for every tiny size (the same pre-training token budget)"})
    sft: str = field(default="configs/sft/tiny.yaml", metadata={"help": "SFTConfig YAML of the main SFT run"})
    sft_overrides: tuple = field(default=(), metadata={"help": "SFTConfig overrides of the main SFT run"})
    size_sft: dict = field(default_factory=dict, metadata={
        "help": "label in `bases` -> SFTConfig YAML of that size's Fig. 4 run (default: `sft`)"})
    lrs: tuple = field(default=(), metadata={"help": "LR search grid (Fig. 2)"})
    lr_overrides: tuple = field(default=("epochs=1",), metadata={
        "help": "SFTConfig overrides of the LR-search and loss-curve runs (one epoch each)"})
    lr_categories: tuple = field(default=("general", "domain_expert"), metadata={
        "help": "held-out categories whose reference log-likelihood is the GPT4All stand-in of the LR search"})
    dpo: str = field(default="configs/dpo/tiny.yaml", metadata={"help": "DPOConfig YAML"})
    dpo_overrides: tuple = field(default=(), metadata={"help": "DPOConfig overrides"})
    eval_suite: str = field(default="standins", metadata={"help": "evaluate() suite of Tables 2, 4, 5"})
    epoch_metric: str = field(default="likelihood", metadata={
        "help": "Table 2 scores: 'benchmarks' (generation, the report's way) or 'likelihood' (held-out answer "
                "log-likelihood per group, which moves at demo scale)"})
    eval_limit: int | None = field(default=None, metadata={"help": "items per task (None: all)"})
    max_gen_toks: int = field(default=192, metadata={
        "help": "generation cap per item of the offline tasks (IFEval keeps at least 256, its own rule)"})
    heldout_limit: int | None = field(default=None, metadata={"help": "held-out items per category for log-likelihoods"})
    # The rules every choice and finding follows, fixed here before any result is read; each
    # rationale stands without the outcome. docs/findings.md lists the rules that were changed
    # after a result was seen, and why.
    final_steps: int = field(default=20, metadata={
        "help": "Fig. 4's final training loss: the mean of the last N steps, the end point of the N-step rolling "
                "mean the figure plots (one number per curve that is the curve's own end)"})
    table2_generation_limit: int | None = field(default=20, metadata={
        "help": "validation items per synthetic task for Table 2's generation-scored rows (shown beside the "
                "selection, not used by it: the epoch rule's metric is `epoch_metric`); caps their cost"})
    gpus: bool = field(default=False, metadata={
        "help": "training jobs run one process per GPU over the nodes of each recipe's `cluster` (never in the kernel)"})
    train_minutes: int = field(default=60, metadata={
        "help": "time limit of a training job; a job that reaches it is requeued and resumes (SLURM)"})
    job_minutes: int = field(default=60, metadata={"help": "time limit of the other jobs (data, evaluation, FP8)"})


_TINY = {"tiny-s (8B stand-in)": "tiny-s", "tiny-m (70B stand-in)": "tiny-m", "tiny-l (405B stand-in)": "tiny-l"}

PRESETS = {
    # Seconds per stage: shows the plumbing only (numbers mean nothing at this size).
    "smoke": Preset(
        scale="smoke", data="configs/data/smoke.yaml", table1_data="configs/data/smoke.yaml", bases=_TINY,
        main="tiny-m (70B stand-in)", base_overrides=("steps=8", "seq_len=64", "batch_size=4", "warmup=2"),
        # Two rows per step (global_batch), so a 2-process job (the SLURM check's gloo DDP) trains
        # exactly what one process does; checkpoints every 2 steps, so a killed job has one to resume from.
        sft_overrides=("max_length=512", "epochs=2", "warmup_steps=2", "global_batch=2"), lrs=(3e-4, 3e-3),
        lr_overrides=("max_steps=4", "epochs=1"),
        # One pair per forward pass, and LoRA dropout and NEFTune off: bf16 results depend on how many
        # pairs share a packed row, and the random draws on how pairs are split over processes.
        dpo_overrides=("max_steps=3", "pairs_per_step=4", "pairs_per_device=1", "max_length=512", "eval_steps=2",
                       "save_steps=1", "lora_dropout=0.0", "neftune_alpha=0.0"),
        eval_limit=2, heldout_limit=4, final_steps=2, table2_generation_limit=2, train_minutes=15, job_minutes=15),
    "demo": Preset(
        scale="demo", data="configs/data/demo.yaml", table1_data="configs/data/table1.yaml", bases=_TINY,
        # Bases: 600 steps of 8 rows (1.2M tokens). The same tokens in 300 steps of 16 rows left tiny-m
        # unable to copy a value from its context (a question's city or ticker into the JSON that
        # follows: 7/50 and 12/50, chance level), which tool calls need; twice the updates on the
        # same tokens (tiny-l: 445 s instead of 398) copy tickers 40/50 and cities 20/50, and held-out
        # loss fell 1.80 -> 1.64.
        main="tiny-m (70B stand-in)", base_overrides=("steps=600", "batch_size=8"), lrs=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2),
        # Every synthetic held-out reference is <= 125 tokens of the demo tokenizer; a tiny model that
        # has not learnt to stop rambles to the cap, so 128 instead of 192 saves a third of that time.
        max_gen_toks=128),
    # Llama 3.1 on GPUs, the report's settings (Table 3), on the published Hermes 3 SFT data. Each
    # training job runs on the nodes its recipe's `cluster` names (8B SFT: 6 x 8 H100), through the
    # configured executor (SLURM, or one process per GPU on this machine).
    "full": Preset(
        scale="full", data="configs/data/hermes3.yaml", table1_data="configs/data/table1.yaml",
        bases={"8B": "meta-llama/Llama-3.1-8B", "70B": "meta-llama/Llama-3.1-70B", "405B": "meta-llama/Llama-3.1-405B"},
        main="8B", sft="configs/sft/llama3.1-8b.yaml",
        size_sft={"70B": "configs/sft/llama3.1-70b.yaml", "405B": "configs/sft/llama3.1-405b.yaml"}, lrs=(5e-6, 6e-6, 7e-6, 8e-6, 9e-6, 1e-5), lr_overrides=(),
        dpo="configs/dpo/llama3.1-8b.yaml", eval_suite="table5", epoch_metric="benchmarks", gpus=True,
        # Table 3: 8B SFT 147 GPU-hours on 48 GPUs (~3 h), 70B 648 on 48 (~13.5 h), 405B 2,086 on 128
        # (~16 h); a 24-hour limit fits each, and a requeued job resumes from its last checkpoint.
        train_minutes=24 * 60, job_minutes=4 * 60),
}


def preset(scale: str) -> Preset:
    """The preset of ``scale``, or one clear error."""
    if scale not in PRESETS:
        raise ValueError(f"unknown scale {scale!r}; known: {', '.join(PRESETS)}")
    return PRESETS[scale]
