"""Memory and speed of scoring the LM head: the plain head vs TRL's fused head, and TRL's SFTTrainer.

    python benchmarks/memory.py [--vocab 128256] [--tokens 8192] [--small-vocab 4096]

One packed row of ``--tokens`` tokens (4 conversations, the second half of each labelled) on a
Llama-shaped model with a small body (2 layers of hidden 256), so that the head dominates as it
does at 8B. Each measurement runs in a fresh process:

* ``sft plain`` / ``sft fused``: one SFT step of ``hermes3.train.sft`` (its ``compute_loss``
  scoring, ``hermes3.train.logprobs.label_logprobs``) forward and backward, with the plain head
  (positions with a label only, via ``logits_to_keep``) and with the fused head;
* ``sft trl``: TRL's ``SFTTrainer.compute_loss`` on the same row (padding-free), forward and backward;
* ``dpo plain`` / ``dpo fused``: one LoRA DPO step of ``hermes3.train.dpo_loss.dpo_step`` (reference
  pass with the adapter off, policy pass, backward) on the row split into 2 pairs.

Peak memory is torch's CPU allocator peak during the step plus the resident weights, as
``benchmarks/dpo.py`` counts it; tokens/s is the row's tokens over the step's time (the second of
two steps). Then the same for the demo's vocabulary (``--small-vocab``), where the fused head is
off by default (``FUSED_MIN_VOCAB``) and the question is what it would cost there.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from dpo import _peak_allocated, _tensor_bytes  # noqa: E402  (one way of counting memory)


def packed_row(vocab: int, tokens: int, conversations: int = 4, seed: int = 0) -> dict:
    """A padding-free row of ``conversations`` equal segments; the second half of each is labelled."""
    import torch

    from hermes3.format.masking import IGNORE_INDEX

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (1, tokens), generator=g)
    seg = tokens // conversations
    pos = torch.arange(tokens) % seg
    labels = ids.clone()
    labels[0, pos < seg // 2] = IGNORE_INDEX
    cu = torch.arange(0, tokens + 1, seg, dtype=torch.int32)
    return {"input_ids": ids, "position_ids": pos[None], "labels": labels, "cu_seq_lens_q": cu, "cu_seq_lens_k": cu,
            "max_length_q": seg, "max_length_k": seg, "seq_index": torch.arange(tokens) // seg,
            "num_sequences": conversations}


def model_for(vocab: int, fused: bool):
    from hermes3.train.logprobs import add_fused_head
    from hermes3.train.modeling import tiny_llama

    m = tiny_llama(vocab, attn_implementation="hermes_varlen_sdpa", hidden_size=256, num_layers=2, num_heads=4)
    if fused:
        import hermes3.train.logprobs as lp

        lp.FUSED_MIN_VOCAB = 0  # measure the fused head at any vocabulary
        add_fused_head(m)
    return m.train()


def sft_step(mode: str, model, row: dict):
    from hermes3.format.masking import IGNORE_INDEX
    from hermes3.train.logprobs import has_fused_head, label_logprobs

    inputs = {k: row[k] for k in ("input_ids", "position_ids", "cu_seq_lens_q", "cu_seq_lens_k", "max_length_q",
                                  "max_length_k")}
    if mode == "trl":
        return _trl_trainer(model).compute_loss(model, {**inputs, "labels": row["labels"]})
    mask = row["labels"][:, 1:] != IGNORE_INDEX
    return -label_logprobs(model, inputs, row["labels"], has_fused_head(model))[mask].sum() / mask.sum()


_TRAINER = {}


def _trl_trainer(model):
    """TRL's SFTTrainer around ``model`` (built once: it patches the model with its fused head)."""
    if "t" not in _TRAINER:
        import tempfile

        from datasets import Dataset
        from tokenizers import Tokenizer, models
        from transformers import PreTrainedTokenizerFast
        from trl import SFTConfig, SFTTrainer

        # the row is already tokens: the trainer only needs a tokenizer to exist (pad and eos ids)
        words = Tokenizer(models.WordLevel({"<pad>": 0, "<unk>": 1}, unk_token="<unk>"))
        tok = PreTrainedTokenizerFast(tokenizer_object=words, pad_token="<pad>", eos_token="<pad>")

        args = SFTConfig(output_dir=tempfile.mkdtemp(), padding_free=True, max_length=None, report_to=[], per_device_train_batch_size=1,
                         use_cpu=True, bf16=False, dataset_kwargs={"skip_prepare_dataset": True})
        _TRAINER["t"] = SFTTrainer(model=model, args=args, processing_class=tok,
                                    train_dataset=Dataset.from_list([{"input_ids": [1, 2]}]))
    return _TRAINER["t"]


def child(kind: str, mode: str, vocab: int, tokens: int) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    import hermes3.train.attention  # noqa: F401  (registers hermes_varlen_sdpa)
    from hermes3.train.dpo import DPOConfig, _lora
    from hermes3.train.dpo_loss import dpo_step

    torch.manual_seed(0)
    model = model_for(vocab, fused=mode == "fused")
    if kind == "dpo":
        model = _lora(model, DPOConfig()).train()
    row = packed_row(vocab, tokens)

    def step():
        model.zero_grad(set_to_none=True)
        loss = dpo_step(model, row, 0.1)[0].mean() if kind == "dpo" else sft_step(mode, model, row)
        loss.backward()
        return float(loss)

    if kind == "sft" and mode == "trl":
        _trl_trainer(model)
    step()  # warm-up (and the trainer's one-time setup)
    resident = _tensor_bytes(model)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        loss = step()
    t0 = time.perf_counter()
    step()  # timed without the profiler
    seconds = time.perf_counter() - t0
    print("RESULT " + json.dumps({"peak_mb": (resident + _peak_allocated(prof)) / 2**20, "tokens_per_s": tokens / seconds,
                                  "loss": loss}))


def measure(kind: str, mode: str, vocab: int, tokens: int) -> dict:
    r = subprocess.run([sys.executable, __file__, "--child", kind, mode, str(vocab), str(tokens)], capture_output=True,
                       text=True, cwd=ROOT)
    lines = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    if r.returncode or not lines:
        raise SystemExit(f"memory.py: {kind} {mode} (vocab {vocab}) failed:\n{r.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", type=int, default=128256, help="Llama 3's vocabulary")
    ap.add_argument("--small-vocab", type=int, default=4096, help="the demo's vocabulary (configs/data/demo.yaml)")
    ap.add_argument("--tokens", type=int, default=8192, help="tokens of the packed row")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (seconds): what the test suite runs, so a moved path or renamed API fails there")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.smoke:
        args.vocab, args.small_vocab, args.tokens = 40000, 1024, 512
    if args.child:
        kind, mode, vocab, tokens = args.child
        return child(kind, mode, int(vocab), int(tokens))
    for vocab in (args.vocab, args.small_vocab):
        print(f"vocabulary {vocab:,}, one packed row of {args.tokens:,} tokens (2 layers, hidden 256)")
        for kind, modes in (("sft", ("plain", "fused", "trl")), ("dpo", ("plain", "fused"))):
            res = {m: measure(kind, m, vocab, args.tokens) for m in modes}
            base = res["plain"]
            for m, r in res.items():
                print(f"  {kind} {m:6s} peak {r['peak_mb']:8.0f} MB ({r['peak_mb'] / base['peak_mb']:.2f}x plain)   "
                      f"{r['tokens_per_s']:8.0f} tokens/s ({r['tokens_per_s'] / base['tokens_per_s']:.2f}x)   "
                      f"loss {r['loss']:.6f}")
            if kind == "sft":
                print(f"  sft fused / trl peak: {res['fused']['peak_mb'] / res['trl']['peak_mb']:.2f}x")


if __name__ == "__main__":
    main()
