"""The ``hermes3`` command line.

    hermes3 validate FILE [--format auto|openai|sharegpt] [--on-error raise|skip]
    hermes3 render FILE [--index N] [--generation-prompt]
    hermes3 pack-stats FILE... [--tokenizer PATH] [--max-length 8192]
    hermes3 data build [--config configs/data/demo.yaml] [key=value ...]
    hermes3 base [--size tiny-s|tiny-m|tiny-l] [key=value ...]
    hermes3 sft --config configs/sft/tiny.yaml [--resume] [key=value ...]
    hermes3 dpo --config configs/dpo/tiny.yaml [key=value ...]
    hermes3 fp8 MODEL_DIR OUT_DIR [--ignore lm_head]
    hermes3 lr-search --config configs/sft/tiny.yaml --lrs 5e-4,1e-3,2e-3
    hermes3 plan --config configs/sft/llama3.1-405b.yaml [cluster.nodes=7 cluster.cpu_offload=true]
    hermes3 eval MODEL [--suite offline|standins|gpt4all|agieval|leaderboard|table5] [--data runs/data/demo]
    hermes3 reproduce [--scale smoke|demo] [--only 05,06]   # the notebooks in order (alias: demo)

Subcommands grow with the recipe (sft, dpo, fp8, eval come with their modules).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _load(args):
    from hermes3.loaders import load_conversations

    convs, report = load_conversations(args.file, format=args.format, on_error=args.on_error)
    print(report, file=sys.stderr)
    return convs


def cmd_validate(args) -> int:
    from hermes3.encoding import control_tokens_in_content

    for n, conv in enumerate(_load(args)):
        for i, field, token in control_tokens_in_content(conv["messages"]):
            print(f"hermes3 validate: warning: record {n}: message {i}, field '{field}': contains {token!r}, "
                  "which is tokenized as plain text, not as a control token", file=sys.stderr)
    return 0


def cmd_render(args) -> int:
    from hermes3.chat import render

    conv = _load(args)[args.index]
    sys.stdout.write(render(conv["messages"], conv["tools"], add_generation_prompt=args.generation_prompt))
    return 0


def cmd_pack_stats(args) -> int:
    from hermes3.loaders import load_conversations
    from hermes3.masking import tokenize_and_mask
    from hermes3.packing import pack
    from hermes3.tokenizer import load_tokenizer

    tok = load_tokenizer(args.tokenizer)
    for f in args.file:
        convs, report = load_conversations(f, on_error="skip")
        lengths = [len(tokenize_and_mask(c, tok)["input_ids"]) for c in convs]
        plan = pack(lengths, args.max_length, overlong=args.overlong)
        print(json.dumps({"file": str(f), **plan.summary(), "skipped_records": sum(report.skipped.values())}))
    return 0


def cmd_data_build(args) -> int:
    from hermes3.config import load_config
    from hermes3.data.build import DataConfig, build

    cfg = load_config(DataConfig, args.config, args.overrides)
    manifest = build(cfg)
    print(json.dumps({k: v for k, v in manifest.items() if k != "config"}, indent=2))
    print(f"written to {cfg.output()}")
    return 0


def cmd_base(args) -> int:
    from hermes3.base_model import BaseConfig, pretrain
    from hermes3.config import load_config

    cfg = load_config(BaseConfig, args.config, [f"size={args.size}", *args.overrides])
    out = pretrain(cfg)
    print((out / "metrics.json").read_text())
    print(f"model in {out}")
    return 0


def cmd_eval(args) -> int:
    from hermes3.evaluate import EvalError, evaluate

    try:
        res = evaluate(args.model, args.suite, data_dir=args.data, limit=args.limit, batch_size=args.batch_size,
                       max_gen_toks=args.max_gen_toks, add_bos_token=args.add_bos_token,
                       apply_chat_template=args.apply_chat_template, out_dir=args.out, backend=args.backend)
    except EvalError as e:
        print(f"hermes3 eval: {e}", file=sys.stderr)
        return 2
    print(res.table[res.table.primary].to_string(index=False))
    return 0


def cmd_sft(args) -> int:
    from hermes3.config import load_config
    from hermes3.sft import SFTConfig, train

    cfg = load_config(SFTConfig, args.config, [*args.overrides] + (["resume=true"] if args.resume else []))
    out = train(cfg)
    print(f"SFT run in {out}")
    return 0


def cmd_plan(args) -> int:
    import json as _json

    from hermes3.config import load_config
    from hermes3.plan import min_nodes, plan
    from hermes3.sft import SFTConfig

    cfg = load_config(SFTConfig, args.config, args.overrides)
    arch = dict(cfg.model_config)
    if not arch:
        from pathlib import Path as _P

        cfg_file = _P(cfg.model) / "config.json"
        if not cfg_file.exists():
            print(f"hermes3 plan: {args.config} has no model_config and {cfg_file} does not exist", file=sys.stderr)
            return 2
        arch = _json.loads(cfg_file.read_text())
    kw = dict(seq_len=cfg.max_length, rows_per_device=cfg.rows_per_device, grad_accum=cfg.grad_accum,
              activation_checkpointing=cfg.gradient_checkpointing)
    p = plan(arch, cfg.cluster, **kw)
    print(p.table())
    m = min_nodes(arch, cfg.cluster, **kw)
    print(f"minimum nodes for this layout ({'with' if cfg.cluster.cpu_offload else 'without'} CPU offload): {m}")
    if not p.fits:
        print(f"hermes3 plan: this layout does not fit: {p.reason}.", file=sys.stderr)
        return 2
    return 0


def cmd_lr_search(args) -> int:
    from hermes3.config import load_config
    from hermes3.selection import lr_search
    from hermes3.sft import SFTConfig

    cfg = load_config(SFTConfig, args.config, args.overrides)
    lrs = [float(x) for x in args.lrs.split(",")]
    scores, best = lr_search(cfg, lrs, data_dir=args.data or cfg.data, group=args.group, limit=args.limit)
    print(scores.to_string(index=False))
    print(f"selected lr: {best:g}")
    return 0


def cmd_dpo(args) -> int:
    from hermes3.config import load_config
    from hermes3.dpo import DPOConfig, train

    cfg = load_config(DPOConfig, args.config, args.overrides)
    out = train(cfg)
    print((out / "heldout.json").read_text())
    print(f"DPO run in {out} (merged model in {out / 'merged'})")
    return 0


def cmd_fp8(args) -> int:
    from hermes3.fp8 import FP8Error, convert

    try:
        rep = convert(args.model_dir, args.out_dir, ignore=tuple(args.ignore), overwrite=args.overwrite)
    except FP8Error as e:
        print(f"hermes3 fp8: {e}", file=sys.stderr)
        return 2
    print(f"quantized {rep.quantized} Linear weights, kept {rep.kept} tensors; "
          f"{rep.bytes_in / 1e6:.1f} MB -> {rep.bytes_out / 1e6:.1f} MB ({rep.ratio:.3f}) in {args.out_dir}")
    return 0


def cmd_reproduce(args) -> int:
    from hermes3.pipeline import StageError, run_notebooks

    t0 = time.time()
    try:
        times = run_notebooks(args.scale, names=args.only.split(",") if args.only else None)
    except StageError as e:
        print(f"hermes3 reproduce: {e}", file=sys.stderr)
        return 2
    for name, sec in times:
        print(f"{name:28s} {sec:7.0f} s")
    print(f"{'total':28s} {time.time() - t0:7.0f} s; notebooks in {ROOT / 'notebooks'}, figures in {ROOT / 'figures'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="hermes3", description="Hermes 3 post-training recipe, reproducible.")
    sub = p.add_subparsers(dest="cmd", required=True)

    def add_load_args(sp):
        sp.add_argument("file", help=".json/.jsonl file or Hugging Face dataset id")
        sp.add_argument("--format", default="auto", choices=["auto", "openai", "sharegpt", "hermes_fc"])
        sp.add_argument("--on-error", default="raise", choices=["raise", "skip"])

    sp = sub.add_parser("validate", help="check conversations against the Hermes format")
    add_load_args(sp)
    sp.set_defaults(fn=cmd_validate)
    sp = sub.add_parser("render", help="print one conversation as the model sees it")
    add_load_args(sp)
    sp.add_argument("--index", type=int, default=0)
    sp.add_argument("--generation-prompt", action="store_true")
    sp.set_defaults(fn=cmd_render)
    sp = sub.add_parser("pack-stats", help="packing efficiency of conversation files")
    sp.add_argument("file", nargs="+")
    sp.add_argument("--tokenizer", required=True, help="tokenizer folder, Hub id or tiktoken file")
    sp.add_argument("--max-length", type=int, default=8192)
    sp.add_argument("--overlong", default="drop", choices=["drop", "truncate", "split"])
    sp.set_defaults(fn=cmd_pack_stats)
    sp = sub.add_parser("data", help="data stage")
    dsub = sp.add_subparsers(dest="data_cmd", required=True)
    b = dsub.add_parser("build", help="build the SFT mixture, preference pairs, eval items and statistics")
    b.add_argument("--config", default=str(ROOT / "configs" / "data" / "demo.yaml"))
    b.add_argument("overrides", nargs="*", help="key=value overrides, e.g. seed=1 filters.min_tokens=32")
    b.set_defaults(fn=cmd_data_build)
    sp = sub.add_parser("base", help="pre-train (or reuse) the tiny base model on the demo corpora")
    sp.add_argument("--size", default="tiny-m", choices=["tiny-s", "tiny-m", "tiny-l"])
    sp.add_argument("--config", default=None, help="YAML with BaseConfig keys")
    sp.add_argument("overrides", nargs="*", help="key=value overrides, e.g. steps=200 data=runs/data/smoke")
    sp.set_defaults(fn=cmd_base)
    sp = sub.add_parser("sft", help="supervised fine-tuning (report §4.1)")
    sp.add_argument("--config", default=str(ROOT / "configs" / "sft" / "tiny.yaml"))
    sp.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint")
    sp.add_argument("overrides", nargs="*", help="key=value overrides, e.g. lr=1e-3 max_steps=10")
    sp.set_defaults(fn=cmd_sft)
    sp = sub.add_parser("dpo", help="DPO with a LoRA adapter on packed preference batches (report §4.2)")
    sp.add_argument("--config", default=str(ROOT / "configs" / "dpo" / "tiny.yaml"))
    sp.add_argument("overrides", nargs="*")
    sp.set_defaults(fn=cmd_dpo)
    sp = sub.add_parser("fp8", help="FP8_DYNAMIC conversion for vLLM (compressed-tensors format), shard by shard")
    sp.add_argument("model_dir")
    sp.add_argument("out_dir")
    sp.add_argument("--ignore", nargs="*", default=["lm_head"])
    sp.add_argument("--overwrite", action="store_true")
    sp.set_defaults(fn=cmd_fp8)
    sp = sub.add_parser("lr-search", help="train one model per LR and score each on the GPT4All group (Fig. 2)")
    sp.add_argument("--config", default=str(ROOT / "configs" / "sft" / "tiny.yaml"))
    sp.add_argument("--lrs", required=True, help="comma-separated, e.g. 5e-6,6e-6,7e-6,8e-6,9e-6,10e-6")
    sp.add_argument("--group", default="gpt4all_standin")
    sp.add_argument("--data", default=None, help="data build with the held-out items (default: the config's data)")
    sp.add_argument("--limit", type=int, default=None)
    sp.add_argument("overrides", nargs="*")
    sp.set_defaults(fn=cmd_lr_search)
    sp = sub.add_parser("plan", help="memory per GPU, tokens per step and steps per epoch of a recipe (meta device)")
    sp.add_argument("--config", required=True)
    sp.add_argument("overrides", nargs="*", help="key=value overrides, e.g. cluster.nodes=7 cluster.cpu_offload=true")
    sp.set_defaults(fn=cmd_plan)
    sp = sub.add_parser("eval", help="benchmarks through lm-evaluation-harness")
    sp.add_argument("model", help="model folder or Hugging Face id")
    sp.add_argument("--suite", default="offline", help="offline (12 tasks) | standins (the 11 of the four groups) | gpt4all | agieval | leaderboard | table5 | a stand-in group")
    sp.add_argument("--data", default=str(ROOT / "runs" / "data" / "demo"), help="data build with the held-out items")
    sp.add_argument("--limit", type=int, default=None)
    sp.add_argument("--batch-size", type=int, default=16)
    sp.add_argument("--max-gen-toks", type=int, default=192)
    sp.add_argument("--add-bos-token", action="store_true", help="Llama models: the report's lm-eval setting")
    sp.add_argument("--apply-chat-template", action="store_true", help="hub suites on chat models")
    sp.add_argument("--backend", default="hf", choices=["hf", "vllm"])
    sp.add_argument("--out", default=None, help="folder for results.json, samples and scores.csv")
    sp.set_defaults(fn=cmd_eval)
    for name in ("reproduce", "demo"):  # `demo` kept as the short name make demo has always used
        sp = sub.add_parser(name, help="run every notebook in order (data -> base -> LR search -> SFT -> epoch "
                                       "selection -> DPO -> FP8 -> benchmarks); finished stages are reused")
        sp.add_argument("--scale", default="demo", choices=["smoke", "demo"])
        sp.add_argument("--only", default="", help="comma-separated notebooks, e.g. 05,06 (default: all)")
        sp.set_defaults(fn=cmd_reproduce)
    args = p.parse_args(argv)
    from hermes3.chat import ConversationError
    from hermes3.config import ConfigError
    from hermes3.modeling import ModelFolderError

    try:
        return args.fn(args)
    except (ConversationError, ConfigError, ModelFolderError) as e:  # one clear line, not a traceback
        print(f"hermes3 {args.cmd}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
