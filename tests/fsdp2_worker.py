"""Worker for test_sft_distributed.py: FSDP2 ``fully_shard`` training steps on CPU (gloo) over
our packed, padding-free rows, with the loss normalised by the target tokens of all ranks.
transformers/accelerate skip FSDP on CPU , so this drives torch directly.

    torchrun --nproc_per_node 2 tests/fsdp2_worker.py MODEL_DIR DATA_DIR OUT.json
    python tests/fsdp2_worker.py MODEL_DIR DATA_DIR OUT.json          (the 1-process reference)
"""

import json
import os
import sys

import torch
import torch.distributed as dist
from transformers import AutoModelForCausalLM, AutoTokenizer

import hermes3.train.attention  # noqa: F401  (registers hermes_varlen_sdpa)
from hermes3.data.build import load_sft
from hermes3.train.logprobs import add_fused_head, has_fused_head, label_logprobs
from hermes3.train.packing import PaddingFreeCollator
from hermes3.train.sft import SFTConfig, packed_dataset


def main(model_dir: str, data_dir: str, out: str, steps: int = 3, rows_per_step: int = 4) -> None:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        dist.init_process_group("gloo")
    tok = AutoTokenizer.from_pretrained(model_dir)
    dataset, _ = packed_dataset(load_sft(data_dir), tok, SFTConfig(data=data_dir, max_length=256))
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="hermes_varlen_sdpa")
    model.config.use_cache = False
    add_fused_head(model)  # as hermes3.train.stage loads it: TRL's fused head for large vocabularies
    if world > 1:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh("cpu", (world,))
        for layer in model.model.layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    collate, losses = PaddingFreeCollator(), []
    for step in range(steps):
        rows = [dataset[i] for i in range(step * rows_per_step, (step + 1) * rows_per_step)]
        # the global target-token count: each rank's loss is its sum / all ranks' tokens
        n_all = sum(int((torch.tensor(r["labels"]) != -100).sum()) for r in rows)
        mine = collate(rows[rank::world])
        labels = mine.pop("labels")  # scored as HermesTrainer.compute_loss does
        loss = -label_logprobs(model, mine, labels, has_fused_head(model))[labels[:, 1:] != -100].sum() / n_all
        (loss * world).backward()  # FSDP2 averages gradients over ranks; the loss is already global
        opt.step()
        opt.zero_grad()
        total = loss.detach().clone()
        if world > 1:
            dist.all_reduce(total)
        losses.append(total.item())
    sharded = type(next(model.parameters())).__name__ == "DTensor"
    params = {n: (p.full_tensor() if sharded else p).detach().clone() for n, p in model.named_parameters()}
    if rank == 0:
        torch.save(params, out + ".pt")
        with open(out, "w") as f:
            json.dump({"losses": losses, "sharded": sharded, "fused": has_fused_head(model)}, f)
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:4])
