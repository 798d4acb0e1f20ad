"""``hermes3 plan``: will this SFT or DPO recipe fit, and how long is an epoch? Computed on
the meta device (no weights, no download) from the recipe's architecture.

Memory per GPU under FSDP full sharding with bf16 mixed precision and AdamW (an
estimate; the standard accounting, e.g. ZeRO paper §3, Korthikanti et al. 2022):

* sharded training state: 16 bytes/parameter (fp32 master weights 4, fp32 gradients 4,
  AdamW moments 8) / number of GPUs; with CPU offload it lives in host RAM instead;
* gathered bf16 weights of the layers in flight: 2 layers (current + prefetch) x 2 bytes;
* activations with full activation checkpointing: every layer keeps its bf16 input
  (seq x hidden x 2 bytes x layers), plus one layer's recompute working set (~34 x seq x
  hidden bytes with flash attention, no seq^2 term);
* the LM head's scores for the loss (``logits``): through TRL's fused head (vocabularies from
  ``hermes3.train.logprobs.FUSED_MIN_VOCAB`` on, Llama 3's included) one bf16 tile of 4,096 tokens
  x 32,768 columns, plus the fp32 gradient of the hidden states (seq x hidden x 4) and the fp32
  gradient accumulator of the gathered head the kernel keeps (vocab x hidden x 4); with the plain
  head seq x vocab x 6 bytes (bf16 logits + fp32 upcast) and the gathered head's bf16 gradient
  (vocab x hidden x 2) before FSDP reduce-scatters it.

Against the report (§4.1): 8B and 70B fit on 6 nodes; for 405B at 8K the estimate needs
CPU offload on any node count the report mentions, and with offload the minimum node
count is set by host RAM: 16 bytes x 405.9B = 6.5 TB of state over the nodes, i.e. 7
nodes at ~1 TB usable RAM each, the report's "seven HGX nodes ... with CPU parameter
offloading".

DPO with a LoRA adapter (``plan_dpo``), per GPU:

* the frozen base in bf16: 2 bytes/parameter, divided over the GPUs under FSDP (in host RAM
  with CPU offload), whole on each GPU under DDP;
* the adapter's training state: 12 bytes/LoRA parameter with RMSProp (fp32 weight 4, fp32
  gradient 4, square average 4; AdamW: 16), divided over the GPUs under FSDP;
* no reference model: the reference is the same weights with the adapter disabled;
* activations with checkpointing as above, for a micro-batch of ``pairs_per_device`` pairs
  at worst ``2 x max_length`` tokens each (every sequence at the length cap);
* logits: through the fused head one bf16 tile and the fp32 gradient of the hidden states (the
  head is frozen, so no head gradient); with the plain head tokens x vocab x 10 bytes (bf16
  logits, their fp32 upcast and the fp32 log-softmax that per-token log-probs are gathered from).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hermes3.train.cluster import ClusterConfig
from hermes3.train.logprobs import FUSED_MIN_VOCAB, TILE_TOKENS, TILE_VOCAB

BYTES_STATE = 16  # fp32 master 4 + fp32 grad 4 + AdamW m, v 8
BYTES_LORA = {"rmsprop": 12, "adamw_torch": 16}  # fp32 weight 4 + fp32 grad 4 + optimizer moments
GiB = 1024**3


@dataclass
class Plan:
    parameters: int
    layers: int
    gpus: int
    memory: dict
    host_ram_per_node_gb: float
    tokens_per_step: int
    steps_per_epoch: int
    fits: bool
    reason: str

    def table(self) -> str:
        lines = [f"parameters           {self.parameters / 1e9:,.2f} B ({self.layers} layers)",
                 f"GPUs                 {self.gpus}"]
        lines += [f"  {k:<19}{v:8.1f} GB" for k, v in self.memory.items()]
        lines += [f"host RAM per node    {self.host_ram_per_node_gb:8.1f} GB",
                  f"tokens per step      {self.tokens_per_step:,}"]
        lines += [f"steps per epoch      {self.steps_per_epoch:,}"] if self.steps_per_epoch >= 0 else []
        lines += [f"fits                 {'yes' if self.fits else 'NO'}: {self.reason}"]
        return "\n".join(lines)


def meta_model(model_config: dict):
    """Instantiate the architecture on the meta device (no memory, no weights)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(**model_config)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(cfg)


def _shape(model_config: dict):
    """The meta model, its parameter count and one decoder layer's parameter count."""
    model = meta_model(model_config)
    return (model, sum(p.numel() for p in model.parameters()),
            sum(p.numel() for p in model.model.layers[0].parameters()))


def plan(model_config: dict, cluster: ClusterConfig, seq_len: int = 8192, rows_per_device: int = 1,
         grad_accum: int = 1, activation_checkpointing: bool = True) -> Plan:
    """Parameters, memory per GPU, tokens per step and steps per epoch for a recipe."""
    model, n_params, layer_params = _shape(model_config)
    h, L, V = model.config.hidden_size, model.config.num_hidden_layers, model.config.vocab_size
    gpus = cluster.nodes * cluster.gpus_per_node
    s = seq_len * rows_per_device
    state = n_params * BYTES_STATE / gpus
    mem = {
        "sharded state": 0.0 if cluster.cpu_offload else state / 1e9,
        "gathered layers": 2 * layer_params * 2 / 1e9,
        "activations": (L * s * h * 2 + 34 * s * h) / 1e9 if activation_checkpointing else L * 34 * s * h / 1e9,
        "logits": head_scores_bytes(s, h, V, head_trains=True, plain_bytes=6) / 1e9,
    }
    mem["total"] = sum(mem.values())
    host = n_params * BYTES_STATE / cluster.nodes / 1e9 if cluster.cpu_offload else 0.0
    tokens = rows_per_device * gpus * grad_accum * seq_len
    steps = math.ceil(cluster.dataset_tokens / (tokens * cluster.packing_efficiency))
    return Plan(n_params, L, gpus, mem, host, tokens, steps, *_verdict(mem, host, cluster))


def head_scores_bytes(tokens: int, hidden: int, vocab: int, head_trains: bool, plain_bytes: int) -> int:
    """Bytes the loss's LM-head scoring holds at its peak (see the module docstring).

    >>> head_scores_bytes(8192, 4096, 128256, head_trains=False, plain_bytes=10)  # one tile + fp32 dL/dhidden
    402653184
    >>> head_scores_bytes(8192, 64, 4096, head_trains=True, plain_bytes=6)  # plain: seq x vocab x 6 + bf16 dL/dhead
    201850880
    """
    if vocab < FUSED_MIN_VOCAB:
        return tokens * vocab * plain_bytes + (vocab * hidden * 2 if head_trains else 0)
    tile = min(tokens, TILE_TOKENS) * min(vocab, TILE_VOCAB) * 2
    return tile + tokens * hidden * 4 + (vocab * hidden * 4 if head_trains else 0)


def lora_parameters(model, r: int) -> int:
    """LoRA parameters of rank ``r`` on every linear layer but the output head (peft's
    ``all-linear``): r x (in + out) each."""
    import torch

    return sum(r * (m.in_features + m.out_features) for n, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and not n.endswith("lm_head"))


def plan_dpo(model_config: dict, cluster: ClusterConfig, max_length: int = 8192, pairs_per_device: int = 1,
             pairs_per_step: int = 64, lora_r: int = 32, optimizer: str = "rmsprop",
             activation_checkpointing: bool = True) -> Plan:
    """Memory per GPU of LoRA DPO (see the module docstring); ``tokens_per_step`` is the
    worst case, every sequence at ``max_length``."""
    model, n_params, layer_params = _shape(model_config)
    h, L, V = model.config.hidden_size, model.config.num_hidden_layers, model.config.vocab_size
    gpus = cluster.nodes * cluster.gpus_per_node
    shards = gpus if cluster.fsdp else 1
    offload = cluster.fsdp and cluster.cpu_offload
    s = 2 * pairs_per_device * max_length
    lora = lora_parameters(model, lora_r) * BYTES_LORA[optimizer]
    mem = {
        "frozen base (bf16)": 0.0 if offload else n_params * 2 / shards / 1e9,
        "LoRA + optimizer": lora / shards / 1e9,
        "reference model": 0.0,
        "gathered layers": 2 * layer_params * 2 / 1e9 if cluster.fsdp else 0.0,
        "activations": (L * s * h * 2 + 34 * s * h) / 1e9 if activation_checkpointing else L * 34 * s * h / 1e9,
        "logits": head_scores_bytes(s, h, V, head_trains=False, plain_bytes=10) / 1e9,
    }
    mem["total"] = sum(mem.values())
    host = (n_params * 2 + lora) / cluster.nodes / 1e9 if offload else 0.0
    return Plan(n_params, L, gpus, mem, host, 2 * pairs_per_step * max_length, -1, *_verdict(mem, host, cluster))


def _verdict(mem: dict, host: float, cluster: ClusterConfig) -> tuple[bool, str]:
    budget = cluster.gpu_memory_gb * cluster.usable_fraction
    if mem["total"] > budget:
        return False, (f"needs {mem['total']:.1f} GB per GPU but {cluster.gpu_memory_gb:.0f} GB GPUs give "
                       f"{budget:.1f} GB" + ("" if cluster.cpu_offload else "; try cpu_offload or more nodes"))
    if host > cluster.cpu_ram_per_node_gb:
        return False, (f"CPU offload needs {host:.0f} GB of host RAM per node, more than the "
                       f"{cluster.cpu_ram_per_node_gb:.0f} GB available; use more nodes")
    return True, f"{mem['total']:.1f} of {budget:.1f} GB per GPU" + (
        f", {host:.0f} of {cluster.cpu_ram_per_node_gb:.0f} GB host RAM per node" if cluster.cpu_offload else "")


def recipe_plan(cfg) -> tuple:
    """``(planner, kwargs)`` for an ``SFTConfig`` or a ``DPOConfig``: ``planner(arch, cluster, **kwargs)``."""
    if hasattr(cfg, "beta"):  # DPO
        gpus = cfg.cluster.nodes * cfg.cluster.gpus_per_node
        return plan_dpo, dict(max_length=cfg.max_length, pairs_per_device=cfg.pairs_per_device or max(
            cfg.pairs_per_step // gpus, 1), pairs_per_step=cfg.pairs_per_step, lora_r=cfg.lora_r,
            optimizer=cfg.optimizer, activation_checkpointing=cfg.gradient_checkpointing)
    return plan, dict(seq_len=cfg.max_length, rows_per_device=cfg.rows_per_device, grad_accum=cfg.grad_accum,
                      activation_checkpointing=cfg.gradient_checkpointing)


def load_recipe(path, overrides=()):
    """An SFT or DPO recipe, told apart by its keys (a DPO recipe sets ``pairs_per_step``)."""
    from hermes3.core.config import ConfigError, load_config, read_yaml

    try:  # an unreadable file (a FIFO, a bomb, bad YAML): load_config below says what is wrong, in one line
        keys = set(read_yaml(path))
    except ConfigError:
        keys = set()
    if "pairs_per_step" in keys or "beta" in keys:
        from hermes3.train.dpo import DPOConfig

        return load_config(DPOConfig, path, overrides)
    from hermes3.train.sft import SFTConfig

    return load_config(SFTConfig, path, overrides)


def min_nodes(model_config: dict, cluster: ClusterConfig, max_nodes: int = 64, planner=None, **kw) -> int | None:
    """The fewest nodes on which ``planner`` (default ``plan``) fits (same cluster otherwise), or None."""
    from dataclasses import replace

    planner = planner or plan
    for n in range(1, max_nodes + 1):
        if planner(model_config, replace(cluster, nodes=n), **kw).fits:
            return n
    return None


def table3(config_files: dict[str, str]):
    """Table 3 side by side: for each size, the report's row next to what ``hermes3 plan``
    computes from our recipe (``{"8B": "configs/sft/llama3.1-8b.yaml", ...}``). A DataFrame with
    one row per quantity and the columns ``<size> report`` / ``<size> ours``."""
    import pandas as pd

    from hermes3.core.config import load_config
    from hermes3.core.paths import resolve
    from hermes3.core.report import report_table
    from hermes3.train.sft import SFTConfig

    rep = report_table(3).set_index("row")
    out = {}
    for size, f in config_files.items():
        cfg = load_config(SFTConfig, resolve(f))
        kw = dict(seq_len=cfg.max_length, rows_per_device=cfg.rows_per_device, grad_accum=cfg.grad_accum,
                  activation_checkpointing=cfg.gradient_checkpointing)
        p = plan(cfg.model_config, cfg.cluster, **kw)
        batch = cfg.rows_per_device * cfg.grad_accum * p.gpus
        ours = {"nodes": cfg.cluster.nodes, "GPUs": p.gpus, "Batch size": batch, "Learning rate": cfg.lr,
                "epochs": cfg.epochs, "tokens per step": p.tokens_per_step, "steps per epoch": p.steps_per_epoch,
                "memory per GPU (GB)": round(p.memory["total"], 1), "CPU offload": cfg.cluster.cpu_offload,
                "fits": p.fits, "minimum nodes": min_nodes(cfg.model_config, cfg.cluster, **kw)}
        report = {k: rep.loc[k, size] for k in rep.index}
        out[f"{size} report"] = {k: _fmt(report.get(k, "")) for k in [*ours, *report]}
        out[f"{size} ours"] = {k: _fmt(ours.get(k, "")) for k in [*ours, *report]}
    return pd.DataFrame(out)


def _fmt(v) -> str:
    """Table cells as text: integers without a decimal point, learning rates as 7e-06."""
    if isinstance(v, bool) or v == "":
        return str(v)
    if isinstance(v, (int, float)):
        return f"{int(v):,}" if float(v).is_integer() else f"{v:g}"
    return str(v)
