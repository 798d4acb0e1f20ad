"""Held-out tool-call exact match of MODEL on DATA/eval/tool_use.jsonl (greedy, 128 tokens), per function."""
import json, sys, collections, torch
from transformers import AutoTokenizer, AutoModelForCausalLM
from hermes3.encoding import encode_conversation
from hermes3.data.checkers import check
torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 2)
model_dir, data = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(model_dir); model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
end = tok.convert_tokens_to_ids("<|im_end|>")
items = [json.loads(l) for l in open(f"{data}/eval/tool_use.jsonl")]
items = [it for it in items if it["check"]["kind"] == "tool_calls"]
per = collections.defaultdict(lambda: [0, 0]); show = []
for it in items:
    ids = encode_conversation(it["prompt"], tok, it.get("tools"), add_generation_prompt=True)["input_ids"]
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=128, do_sample=False, eos_token_id=end, pad_token_id=end)
    text = tok.decode(out[0, len(ids):], skip_special_tokens=False).split("<|im_end|>")[0]
    ok, why = check(it["check"], text)
    fn = "+".join(c["name"] for c in it["check"]["calls"])
    per[fn][0] += ok; per[fn][1] += 1
    if not ok and "currency" in fn: show.append((it["prompt"][-1]["content"], text.strip()[:200]))
tot = sum(v[0] for v in per.values()), sum(v[1] for v in per.values())
print("TOTAL", tot, {k: tuple(v) for k, v in per.items()})
for s in show[:6]: print(" ", s)
