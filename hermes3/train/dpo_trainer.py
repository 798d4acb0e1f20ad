"""DPO on transformers' ``Trainer``: the same engine as SFT (``hermes3.train.engine``), our loss.

The Trainer brings device placement, DDP/FSDP (``torchrun``, ``accelerate launch``),
gradient accumulation, clipping, the LR schedule, atomic checkpoints, resume and W&B. What
this subclass changes, and why:

* ``compute_loss`` is our packed DPO step (``hermes3.train.dpo_loss.dpo_step``): a reference pass with the LoRA
  adapter disabled on the *unwrapped* PeftModel (the flags live there) but run through the
  wrapped model (so DDP/FSDP hooks run), then the policy pass. TRL's ``DPOTrainer`` does the
  same switch for peft models; it cannot pack.
* **Normalisation over the global batch.** Each micro-batch returns
  ``sum(pair losses) / pairs in the optimizer step (all ranks)`` x world size (DDP and FSDP
  average gradients over ranks), so accumulation and the number of processes leave the
  gradient of "mean over ``pairs_per_step`` pairs" unchanged (tested: 2 processes == 1).
* **Reward metrics** (TRL's names) are summed per pair over the logging interval, summed
  across ranks at log time and divided by the pairs: the mean over every pair logged.
* **NEFTune noise** comes from a generator seeded by (seed, step, rank, micro-batch), so a
  resumed run draws the noise the uninterrupted run drew. One draw serves both passes of a
  micro-batch: the logged rewards, margins and accuracies compare policy and reference on the
  same noisy inputs. Against a noise-free reference they measured the noise instead, a penalty
  summed over each completion's tokens (notebook 06's Fig. 5: margin -0.4 at step 1, where the
  fresh adapter makes the policy the reference); now step 1 logs margin 0, accuracy 0.5.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from hermes3.train import engine
from hermes3.train.dpo_loss import METRICS, collate_packed, collate_padded, dpo_step, evaluate_pairs


def unwrapped(trainer):
    """The PeftModel under DDP/FSDP wrappers (``disable_adapter``, ``get_input_embeddings``)."""
    return trainer.accelerator.unwrap_model(trainer.model_wrapped)


def _trainer_class():
    base = engine.trainer_base()

    class DPOEngineTrainer(base):
        loss_is_scaled_for_ga = True  # normalised over the whole optimizer step below

        def __init__(self, *a, beta: float = 0.1, neftune_alpha: float = 0.0, noise_seed: int = 0, **kw):
            self.beta, self.neftune_alpha, self.noise_seed = beta, neftune_alpha, noise_seed
            self.heldout_ref_cache = {}  # reference log-probs of the held-out pairs (``evaluate_pairs``)
            super().__init__(*a, **kw)

        def _get_num_items_in_batch(self, batch_samples, device):
            """Pairs in this optimizer step, over all micro-batches and ranks."""
            n = torch.tensor(sum(b["num_sequences"] // 2 for b in batch_samples), device=device)
            if self.args.world_size > 1:
                n = self.accelerator.gather(n.reshape(1)).sum()
            return n

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            peft = self.accelerator.unwrap_model(model)
            gen = None
            if self.neftune_alpha > 0 and model.training:
                key = (self.noise_seed, self.state.global_step, self.args.process_index, self._micro_step())
                gen = torch.Generator(device=inputs["input_ids"].device).manual_seed(hash(key) & 0x7FFFFFFF)
            losses, logged, _, _ = dpo_step(model, inputs, self.beta, self.neftune_alpha, gen, peft=peft)
            if model.training:
                self._sums = logged.sum(0) + getattr(self, "_sums", 0)
                self._pairs = len(losses) + getattr(self, "_pairs", 0)
            if num_items_in_batch is None:  # outside training_step (e.g. Trainer.evaluate)
                return losses.mean()
            return losses.sum() / num_items_in_batch * self.accelerator.num_processes

        def _micro_step(self) -> int:
            if getattr(self, "_noise_step", None) != self.state.global_step:
                self._noise_step, self._noise_k = self.state.global_step, 0
            self._noise_k += 1
            return self._noise_k

        def log(self, logs, start_time=None):
            if "loss" in logs and getattr(self, "_pairs", 0):
                total = torch.cat([self._sums.float(), torch.tensor([float(self._pairs)], device=self._sums.device)])
                if self.args.world_size > 1:
                    total = self.accelerator.reduce(total, reduction="sum")
                logs.update(zip(METRICS, (total[:-1] / total[-1]).tolist(), strict=True))
                self._sums, self._pairs = 0, 0
            super().log(logs, start_time)

    return DPOEngineTrainer


def _heldout_callback(trainer_ref: dict, held: list[dict], beta: float, every: int, path: Path):
    """``heldout.csv``: held-out reward metrics at step 0 and every ``every`` steps (Fig. 5 on
    held-out pairs). Every rank scores (FSDP needs all of them in each forward), rank 0 writes."""
    from transformers import TrainerCallback

    def score(state, reference_only=False):
        tr = trainer_ref["trainer"]
        with tr.accelerator.autocast():
            m = evaluate_pairs(tr.model_wrapped, held, beta, peft=unwrapped(tr), reference_only=reference_only,
                               ref_cache=tr.heldout_ref_cache)
        if state.is_world_process_zero:
            engine.append_csv(path, {"step": state.global_step, **m})

    class HeldoutCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            if state.global_step == 0:  # a fresh adapter: the policy is the reference
                score(state, reference_only=True)

        def on_step_end(self, args, state, control, **kw):
            if state.global_step % every == 0 or state.global_step == state.max_steps:
                score(state)

    return HeldoutCallback()


def _row(state, logs) -> dict:
    return {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4), "loss": logs["loss"],
            "learning_rate": logs.get("learning_rate"), "grad_norm": logs.get("grad_norm"),
            **{k: logs.get(k) for k in METRICS}}


def build_trainer(cfg, out: Path, model, tok, train_pairs: list[dict], held: list[dict], per_device: int, accum: int,
                  report_to: list[str], callbacks=()):
    """The Trainer for ``cfg`` (``hermes3.train.dpo.DPOConfig``) over tokenized pairs."""
    from functools import partial

    from hermes3.train.modeling import use_bf16

    cuda = torch.cuda.is_available()
    args = engine.training_arguments(
        out, cfg.name, cuda=cuda, wandb=report_to, save_steps=cfg.save_steps,
        per_device_train_batch_size=per_device, gradient_accumulation_steps=accum, num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps, learning_rate=cfg.lr, warmup_steps=cfg.warmup_steps, lr_scheduler_type="linear",
        optim=cfg.optimizer, weight_decay=0.01 if cfg.optimizer == "adamw_torch" else 0.0,  # torch's AdamW default
        max_grad_norm=cfg.max_grad_norm, bf16=use_bf16(cfg.bf16), logging_steps=cfg.logging_steps,
        seed=cfg.seed, data_seed=cfg.seed, average_tokens_across_devices=False)
    collate = collate_packed if cfg.packed else partial(collate_padded, pad_id=tok.pad_token_id or 0)
    trainer_ref: dict = {}
    cbs = [engine.csv_callback(out / "metrics.csv", _row), engine.config_callback(asdict(cfg)), *callbacks]
    if held and cfg.eval_steps:
        cbs.append(_heldout_callback(trainer_ref, held, cfg.beta, cfg.eval_steps, out / "heldout.csv"))
    trainer = _trainer_class()(model=model, args=args, train_dataset=train_pairs, data_collator=collate,
                               processing_class=tok, callbacks=cbs, beta=cfg.beta, neftune_alpha=cfg.neftune_alpha,
                               noise_seed=cfg.seed)
    trainer_ref["trainer"] = trainer
    return trainer
