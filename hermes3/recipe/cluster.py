"""What a job needs and where jobs run: the resources a stage asks for, the cluster file, the
job registry's keys, and the entry point of each task of a several-task job. Shared by both
backends of ``hermes3.recipe.executor`` (local, and ``hermes3.recipe.slurm``)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hermes3.core.errors import Hermes3Error


@dataclass(frozen=True)
class Resources:
    """What one job asks the scheduler for."""

    nodes: int = 1
    tasks_per_node: int = 1  # processes per node: one per GPU, or 2 gloo processes for a CPU check
    gpus_per_node: int = 0
    cpus_per_task: int = 1
    timeout_min: int = 60

    @property
    def tasks(self) -> int:
        return self.nodes * self.tasks_per_node


ONE = Resources()


@dataclass
class ExecutorConfig:
    """The cluster file (``$HERMES3_CLUSTER``, YAML): where and how jobs run."""

    backend: str = field(default="local", metadata={"help": "local | slurm", "choices": ("local", "slurm")})
    folder: str = field(default="", metadata={"help": "job folder (submitit pickles, logs, the job registry); "
                                                       "empty: <runs>/jobs"})
    partition: str = field(default="", metadata={"help": "SLURM partition (empty: the cluster's default)"})
    account: str = field(default="", metadata={"help": "SLURM account"})
    qos: str = field(default="", metadata={"help": "SLURM quality of service"})
    train_tasks: int = field(default=0, metadata={
        "help": "processes per training job when the stage has no GPUs (a CPU check of the multi-process path); "
                "0: one", "ge": 0})
    wait: bool = field(default=True, metadata={"help": "wait for the jobs (false: submit, return, re-attach later)"})
    poll_seconds: float = field(default=2.0, metadata={"help": "how often to ask SLURM for job states", "gt": 0})


def executor_config() -> ExecutorConfig:
    """``$HERMES3_CLUSTER`` (a YAML file of ``ExecutorConfig``) with ``$HERMES3_EXECUTOR`` over its backend
    and ``$HERMES3_WAIT=0`` over its ``wait``."""
    from hermes3.core.config import load_config

    path = os.environ.get("HERMES3_CLUSTER") or None
    overrides = [f"backend={os.environ['HERMES3_EXECUTOR']}"] if os.environ.get("HERMES3_EXECUTOR") else []
    if os.environ.get("HERMES3_WAIT", "").lower() in ("0", "false", "no"):  # `hermes3 reproduce --no-wait`
        overrides.append("wait=false")
    return load_config(ExecutorConfig, path, overrides)


class JobFailed(Hermes3Error):
    """A job that raised or died, named in one line with where its log is."""


class JobsPending(Hermes3Error):
    """Jobs submitted without waiting (``wait: false``): run the stage again to attach to them."""


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def job_threads(tasks_on_node: int = 1) -> int:
    """CPU threads for one task of a scheduled job: the CPUs SLURM gave the task
    (``SLURM_CPUS_PER_TASK``), else this machine's cores shared among the node's tasks.

    Why not torch's default (every core of the node): without CPU binding (``task/none``, and any
    node shared by several jobs) each job would spin one thread per core, and two such 1-CPU jobs on
    2 cores ran 3-6x slower than the same jobs at one thread each (``make slurm-check``)."""
    given = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if given.isdigit() and int(given) > 0:
        return int(given)
    return max(1, cores() // max(1, tasks_on_node))


def in_tasks(pair: tuple[Callable, object]):
    """``fn(arg)`` in every task of a several-task job: torch.distributed's variables (``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``) from the scheduler's, the process
    group started (gloo on CPU, nccl on CUDA), so the HF Trainer runs DDP/FSDP exactly as under
    ``torchrun``. One task's CPU threads: ``job_threads``."""
    import submitit
    import torch
    import torch.distributed as dist

    env = submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    if not torch.cuda.is_available():
        torch.set_num_threads(job_threads(env.local_world_size))
    fn, arg = pair
    if env.world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        return fn(arg)
    finally:
        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def barrier() -> None:
    """Wait for every task of a several-task job (nothing to wait for in one process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def job_folder(cfg: ExecutorConfig) -> Path:
    from hermes3.core.paths import resolve, runs

    return resolve(cfg.folder) if cfg.folder else runs("jobs")


def job_key(desc: str, name: str, fn, job) -> str:
    """A stable digest of what a job runs: the same stage asked again finds its job in the registry."""

    def stable(x):
        if callable(x) and hasattr(x, "__qualname__"):
            return f"{getattr(x, '__module__', '')}.{x.__qualname__}"
        if isinstance(x, (list, tuple)):
            return [stable(v) for v in x]
        return repr(x)

    text = json.dumps([desc, name, stable(fn), stable(job)], default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
