"""Teacher-forced slot probe on fresh SINGLE-call and SESSION items: P(right first token), argmax,
P mass on first tokens of values present in the last request, P mass on all values of the slot."""
import json, sys, random, collections, torch
from transformers import AutoTokenizer, AutoModelForCausalLM
from hermes3.encoding import encode_conversation
from hermes3.data import synthetic as S
torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 2)
model_dir, kind = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(model_dir); model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
VALUES = {"city": S.CITIES, "symbol": S.STOCKS, "from_currency": S.CURRENCIES, "to_currency": S.CURRENCIES,
          "amount": [str(a) for a in S.AMOUNTS]}
def first(v, num=False):
    ids = tok(': ' + (v if num else '"' + v)).input_ids
    base = tok(': ' + ('' if num else '"')).input_ids
    return ids[len(base)] if not num else tok(': ' + v).input_ids[1]
rng = random.Random(12345)
stats = collections.defaultdict(lambda: [0, 0, 0.0, 0.0, 0.0])
for n in range(int(sys.argv[4]) if len(sys.argv) > 4 else 150):
    if kind == "single":
        rounds = [S._tool_request(rng)]
    else:
        rounds = [S._tool_request(rng) for _ in range(rng.randint(4, 8))]
    msgs = []
    for q, name, args, result, answer, _ in rounds[:-1]:
        msgs += [{"role": "user", "content": q}, {"role": "assistant", "tool_calls": [S._call(name, args)]},
                 S._result(name, result), {"role": "assistant", "content": answer}]
    q, name, args = rounds[-1][:3]
    names = sorted({r[1] for r in rounds} | ({rng.choice(sorted(S.TOOLS))} if kind == "single" else set()))
    tools = [S.TOOLS[x] for x in names]
    prompt = msgs + [{"role": "user", "content": q}]
    full_msgs = prompt + [{"role": "assistant", "tool_calls": [S._call(name, args)]}]
    full = encode_conversation(full_msgs, tok, tools)["input_ids"]
    pl = len(encode_conversation(prompt, tok, tools, add_generation_prompt=True)["input_ids"])
    with torch.no_grad():
        logp = model(torch.tensor([full])).logits[0].log_softmax(-1)
    s = ""; offsets = []
    for i in range(pl, len(full)):
        offsets.append((len(s), i)); s += tok.decode([full[i]])
    for k, v in args.items():
        num = not isinstance(v, str)
        needle = f'"{k}": ' + ('' if num else '"')
        j = s.find(needle) + len(needle)
        i = next(i for o, i in offsets if o >= j)
        p = logp[i - 1].exp()
        def cand(x):
            a2 = dict(args); a2[k] = int(x) if num else x
            m2 = prompt + [{"role": "assistant", "tool_calls": [S._call(name, a2)]}]
            return encode_conversation(m2, tok, tools)["input_ids"][i]
        present = {cand(x) for x in VALUES[k] if f" {x} " in f" {q.rstrip('.?')} "}
        allv = {cand(x) for x in VALUES[k]}
        st = stats[f"{name}.{k}"]
        st[0] += 1; st[1] += int(p.argmax()) == full[i]; st[2] += p[full[i]].item()
        st[3] += p[list(present)].sum().item(); st[4] += p[list(allv)].sum().item()
        assert full[i] in allv, (k, v, tok.decode([full[i]]))
print(kind, model_dir)
for k, (n, a, p, pr, al) in sorted(stats.items()):
    print(f"  {k:30s} n={n:3d} argmax-right={a/n:.2f} p(right)={p/n:.2f} p(present)={pr/n:.2f} p(any value)={al/n:.2f} chance={1/len(VALUES[k.split('.')[1]]):.2f}")
