"""Greedy tokens of a (FP8) checkpoint with transformers, for scripts/vllm_check.py.

    python scripts/greedy_reference.py FP8_DIR OUT_JSON [N_TOKENS]
"""

import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from hermes3.format.chat import render

PROMPTS = ["What is the capital of Peru?", "Spell the word 'garden' backwards.",
           "Convert 7 kilometers to meters.", "List 3 colors, one per line as bullets."]


def main(model_dir: str, out: str, n: int = 16) -> None:
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).eval()
    rows = []
    for p in PROMPTS:
        ids = tok(render([{"role": "user", "content": p}], add_generation_prompt=True), add_special_tokens=False).input_ids
        with torch.no_grad():
            gen = model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False, eos_token_id=None,
                                 min_new_tokens=n, pad_token_id=tok.pad_token_id)
        rows.append({"prompt": ids, "tokens": gen[0, len(ids):].tolist()})
    json.dump(rows, open(out, "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(x) for x in sys.argv[3:4]))
