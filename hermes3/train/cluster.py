"""The hardware a full-scale recipe runs on: what ``hermes3 plan`` sizes memory and nodes
against, and what a cluster executor asks the scheduler for."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ClusterConfig:
    """The hardware a recipe runs on (for ``hermes3 plan``; training ignores it)."""

    nodes: int = field(default=1, metadata={"help": "number of nodes", "ge": 1})
    gpus_per_node: int = field(default=8, metadata={"help": "GPUs per node (HGX: 8)", "ge": 1})
    gpu_memory_gb: float = field(default=80.0, metadata={"help": "memory per GPU in GB (H100 SXM: 80)", "gt": 0})
    usable_fraction: float = field(default=0.95, metadata={"help": "share of GPU memory usable after CUDA context etc.",
                                                                 "gt": 0, "le": 1})
    cpu_offload: bool = field(default=False, metadata={"help": "FSDP CPU offload of parameters, grads and optimizer"})
    fsdp: bool = field(default=True, metadata={
        "help": "the launch shards weights and state over all GPUs (FSDP full shard); false: DDP, a whole copy per GPU "
                "(DPO under torchrun)"})
    cpu_ram_per_node_gb: float = field(default=1024.0, metadata={"help": "host RAM per node usable for offload", "ge": 0})
    dataset_tokens: float = field(default=390e6, metadata={"help": "SFT tokens per epoch (report: 390M)", "gt": 0})
    packing_efficiency: float = field(default=0.96, metadata={"help": "real tokens / slots (report: 96%)", "gt": 0, "le": 1})
