"""``hermes3 plan``: will this SFT recipe fit, and how long is an epoch? Computed on the
meta device (no weights, no download) from the recipe's architecture.

Memory per GPU under FSDP full sharding with bf16 mixed precision and AdamW (an
estimate; the standard accounting, e.g. ZeRO paper §3, Korthikanti et al. 2022):

* sharded training state: 16 bytes/parameter (fp32 master weights 4, fp32 gradients 4,
  AdamW moments 8) / number of GPUs; with CPU offload it lives in host RAM instead;
* gathered bf16 weights of the layers in flight: 2 layers (current + prefetch) x 2 bytes;
* activations with full activation checkpointing: every layer keeps its bf16 input
  (seq x hidden x 2 bytes x layers), plus one layer's recompute working set (~34 x seq x
  hidden bytes with flash attention, no seq^2 term);
* logits for the loss: seq x vocab x 6 bytes (bf16 logits + fp32 upcast).

Against the report (§4.1): 8B and 70B fit on 6 nodes; for 405B at 8K the estimate needs
CPU offload on any node count the report mentions, and with offload the minimum node
count is set by host RAM: 16 bytes x 405.9B = 6.5 TB of state over the nodes, i.e. 7
nodes at ~1 TB usable RAM each, the report's "seven HGX nodes ... with CPU parameter
offloading".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

BYTES_STATE = 16  # fp32 master 4 + fp32 grad 4 + AdamW m, v 8
GiB = 1024**3


@dataclass
class ClusterConfig:
    """The hardware a recipe runs on (for ``hermes3 plan``; training ignores it)."""

    nodes: int = field(default=1, metadata={"help": "number of nodes", "ge": 1})
    gpus_per_node: int = field(default=8, metadata={"help": "GPUs per node (HGX: 8)", "ge": 1})
    gpu_memory_gb: float = field(default=80.0, metadata={"help": "memory per GPU in GB (H100 SXM: 80)", "gt": 0})
    usable_fraction: float = field(default=0.95, metadata={"help": "share of GPU memory usable after CUDA context etc.",
                                                                 "gt": 0, "le": 1})
    cpu_offload: bool = field(default=False, metadata={"help": "FSDP CPU offload of parameters, grads and optimizer"})
    cpu_ram_per_node_gb: float = field(default=1024.0, metadata={"help": "host RAM per node usable for offload", "ge": 0})
    dataset_tokens: float = field(default=390e6, metadata={"help": "SFT tokens per epoch (report: 390M)", "gt": 0})
    packing_efficiency: float = field(default=0.96, metadata={"help": "real tokens / slots (report: 96%)", "gt": 0, "le": 1})


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
                  f"tokens per step      {self.tokens_per_step:,}",
                  f"steps per epoch      {self.steps_per_epoch:,}",
                  f"fits                 {'yes' if self.fits else 'NO'}: {self.reason}"]
        return "\n".join(lines)


def meta_model(model_config: dict):
    """Instantiate the architecture on the meta device (no memory, no weights)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(**model_config)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(cfg)


def plan(model_config: dict, cluster: ClusterConfig, seq_len: int = 8192, rows_per_device: int = 1,
         grad_accum: int = 1, activation_checkpointing: bool = True) -> Plan:
    """Parameters, memory per GPU, tokens per step and steps per epoch for a recipe."""
    model = meta_model(model_config)
    n_params = sum(p.numel() for p in model.parameters())
    c = model.config
    h, L, V = c.hidden_size, c.num_hidden_layers, c.vocab_size
    layer_params = sum(p.numel() for p in model.model.layers[0].parameters())
    gpus = cluster.nodes * cluster.gpus_per_node
    s = seq_len * rows_per_device
    state = n_params * BYTES_STATE / gpus
    mem = {
        "sharded state": 0.0 if cluster.cpu_offload else state / 1e9,
        "gathered layers": 2 * layer_params * 2 / 1e9,
        "activations": (L * s * h * 2 + 34 * s * h) / 1e9 if activation_checkpointing else L * 34 * s * h / 1e9,
        "logits": s * V * 6 / 1e9,
    }
    mem["total"] = sum(mem.values())
    budget = cluster.gpu_memory_gb * cluster.usable_fraction
    host = n_params * BYTES_STATE / cluster.nodes / 1e9 if cluster.cpu_offload else 0.0
    tokens = rows_per_device * gpus * grad_accum * seq_len
    steps = math.ceil(cluster.dataset_tokens / (tokens * cluster.packing_efficiency))
    if mem["total"] > budget:
        fits, why = False, (f"needs {mem['total']:.1f} GB per GPU but {cluster.gpu_memory_gb:.0f} GB GPUs give "
                            f"{budget:.1f} GB" + ("" if cluster.cpu_offload else "; try cpu_offload or more nodes"))
    elif host > cluster.cpu_ram_per_node_gb:
        fits, why = False, (f"CPU offload needs {host:.0f} GB of host RAM per node, more than the "
                            f"{cluster.cpu_ram_per_node_gb:.0f} GB available; use more nodes")
    else:
        fits, why = True, f"{mem['total']:.1f} of {budget:.1f} GB per GPU" + (
            f", {host:.0f} of {cluster.cpu_ram_per_node_gb:.0f} GB host RAM per node" if cluster.cpu_offload else "")
    return Plan(n_params, L, gpus, mem, host, tokens, steps, fits, why)


def min_nodes(model_config: dict, cluster: ClusterConfig, max_nodes: int = 64, **kw) -> int | None:
    """The fewest nodes on which ``plan`` fits (same cluster otherwise), or None."""
    from dataclasses import replace

    for n in range(1, max_nodes + 1):
        if plan(model_config, replace(cluster, nodes=n), **kw).fits:
            return n
    return None


def table3(config_files: dict[str, str]):
    """Table 3 side by side: for each size, the report's row next to what ``hermes3 plan``
    computes from our recipe (``{"8B": "configs/sft/llama3.1-8b.yaml", ...}``). A DataFrame with
    one row per quantity and the columns ``<size> report`` / ``<size> ours``."""
    import pandas as pd

    from hermes3.config import load_config
    from hermes3.paths import resolve
    from hermes3.report import report_table
    from hermes3.sft import SFTConfig

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
