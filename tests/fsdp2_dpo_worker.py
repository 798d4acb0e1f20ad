"""Worker for test_dpo_engine.py: DPO steps under FSDP2 ``fully_shard`` on CPU (gloo) with the
LoRA adapter (trainable) and the frozen base sharded together, our packed pairs, the reference
pass with the adapter disabled (``dpo_step``, as in training), and the loss normalised over the pairs of all ranks.
transformers/accelerate skip FSDP on CPU, so this drives torch directly.

    torchrun --nproc_per_node 2 tests/fsdp2_dpo_worker.py MODEL_DIR DATA_DIR OUT.json
    python tests/fsdp2_dpo_worker.py MODEL_DIR DATA_DIR OUT.json          (the 1-process reference)
"""

import json
import os
import sys

import torch
import torch.distributed as dist

from hermes3.train.dpo import DPOConfig, prepare
from hermes3.train.dpo_loss import collate_packed, dpo_step


def main(model_dir: str, data_dir: str, out: str, steps: int = 3, pairs_per_step: int = 4) -> None:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        dist.init_process_group("gloo")
    cfg = DPOConfig(model=model_dir, data=data_dir, lora_dropout=0.0, max_length=512, bf16="false")
    model, _, pairs, _, _ = prepare(cfg)  # same seed: the same fresh adapter on every rank
    if world > 1:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh("cpu", (world,))
        for layer in model.base_model.model.model.layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
    opt = torch.optim.RMSprop([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses, margins = [], []
    model.train()
    for step in range(steps):
        chunk = pairs[step * pairs_per_step:(step + 1) * pairs_per_step]
        mine = collate_packed(chunk[rank::world])
        per_pair, logged, _, _ = dpo_step(model, mine, cfg.beta)  # the step the Trainer runs
        loss = per_pair.sum() / len(chunk)  # mean over the pairs of all ranks
        (loss * world).backward()  # FSDP2 averages gradients over ranks; the loss is already global
        opt.step()
        opt.zero_grad()
        stats = torch.stack([loss.detach(), logged[:, 2].sum()])
        if world > 1:
            dist.all_reduce(stats)
        losses.append(stats[0].item())
        margins.append(stats[1].item() / len(chunk))
    sharded = type(next(model.parameters())).__name__ == "DTensor"
    params = {n: (p.full_tensor() if sharded else p).detach().clone() for n, p in model.named_parameters()
              if p.requires_grad}
    if rank == 0:
        torch.save(params, out + ".pt")
        with open(out, "w") as f:
            json.dump({"losses": losses, "margins": margins, "sharded": sharded}, f)
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:4])
