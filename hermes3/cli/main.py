"""The ``hermes3`` command line.

    hermes3 validate FILE [--format auto|openai|sharegpt] [--on-error raise|skip]
    hermes3 render FILE [--index N] [--generation-prompt]
    hermes3 pack-stats FILE... [--tokenizer runs/data/demo/tokenizer] [--max-length 8192]
    hermes3 data build [--config configs/data/demo.yaml] [key=value ...]
    hermes3 base [--size tiny-s|tiny-m|tiny-l] [key=value ...]
    hermes3 sft --config configs/sft/tiny.yaml [--resume] [key=value ...]
    hermes3 dpo --config configs/dpo/tiny.yaml [--resume] [key=value ...]
    hermes3 fp8 MODEL_DIR OUT_DIR [--ignore lm_head]
    hermes3 lr-search --config configs/sft/tiny.yaml --lrs 5e-4,1e-3,2e-3
    hermes3 plan --config configs/sft/llama3.1-405b.yaml [cluster.nodes=7 cluster.cpu_offload=true]
    hermes3 eval MODEL [--suite offline|standins|gpt4all|agieval|leaderboard|table5] [--data runs/data/demo]
    hermes3 reproduce [--scale smoke|demo|full] [--only 05,06] [--executor local|slurm] [--dry-run]
    hermes3 chat MODEL | --url http://127.0.0.1:8000/v1 [MODEL] [--system TEXT] [--tools tools.json]
    hermes3 wandb-report [--check runs/wandb/wandb] [--offline --out report.json] [--entity E] [--project hermes3]

Bad input (a file, record, config key, argument or model folder) is one line on stderr,
``hermes3 <command>: <what and where>``, and exit code 2; ``--debug`` (anywhere on the
command line) shows the traceback instead. Every such error derives from
``hermes3.core.errors.Hermes3Error`` and is caught once, in ``main``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from hermes3.core.errors import Hermes3Error
from hermes3.core.paths import REPO, runs

DEFAULT_TOKENIZER = runs("data", "demo", "tokenizer")  # written by `hermes3 data build`


class ArgumentParser(argparse.ArgumentParser):
    """argparse with its errors as one line, like every other hermes3 error (no usage dump)."""

    def error(self, message: str):
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def positive_int(text: str) -> int:
    """An argument that counts something (``--max-length``, ``--limit``): an integer >= 1."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return n


def learning_rates(text: str) -> list[float]:
    """``--lrs`` as a list of positive floats.

    >>> learning_rates("5e-4,1e-3")
    [0.0005, 0.001]
    """
    try:
        lrs = [float(x) for x in text.split(",")]
    except ValueError:
        lrs = []
    if not lrs or not all(lr > 0 for lr in lrs):  # `not >` so nan is refused too
        raise argparse.ArgumentTypeError(f"expected comma-separated learning rates > 0, e.g. 5e-4,1e-3; got {text!r}")
    return lrs


def _load(args, require_assistant: bool = True):
    from hermes3.data.loaders import load_conversations

    convs, report = load_conversations(args.file, format=args.format, on_error=args.on_error,
                                       require_assistant=require_assistant)
    print(report, file=sys.stderr)
    return convs


def cmd_validate(args) -> int:
    from hermes3.format.encoding import control_tokens_in_content

    for n, conv in enumerate(_load(args)):
        for i, field, token in control_tokens_in_content(conv["messages"]):
            print(f"hermes3 validate: warning: record {n}: message {i}, field '{field}': contains {token!r}, "
                  "which is tokenized as plain text, not as a control token", file=sys.stderr)
    return 0


def cmd_render(args) -> int:
    from hermes3.format.chat import render

    convs = _load(args, require_assistant=not args.generation_prompt)  # a prompt to complete has none yet
    if not 0 <= args.index < len(convs):
        raise Hermes3Error(f"{args.file}: --index {args.index} is out of range: expected 0..{len(convs) - 1} "
                           f"({len(convs)} valid conversations)")
    conv = convs[args.index]
    sys.stdout.write(render(conv["messages"], conv["tools"], add_generation_prompt=args.generation_prompt))
    return 0


def cmd_pack_stats(args) -> int:
    from hermes3.data.loaders import is_local_path, load_conversations
    from hermes3.format.masking import tokenize_and_mask
    from hermes3.format.tokenizer import load_tokenizer
    from hermes3.train.packing import pack

    name = args.tokenizer or DEFAULT_TOKENIZER
    if args.tokenizer is None and not DEFAULT_TOKENIZER.exists():
        raise Hermes3Error(f"no --tokenizer given and the default {DEFAULT_TOKENIZER} does not exist: run "
                           "`hermes3 data build` first, or pass --tokenizer FOLDER|HUB_ID|tokenizer.model")
    if is_local_path(name) and not Path(name).expanduser().exists():
        raise Hermes3Error(f"tokenizer {name} does not exist")
    try:
        tok = load_tokenizer(name)
    except Exception as e:  # transformers' OSError/ValueError run to many lines
        raise Hermes3Error(f"tokenizer {name}: cannot load it ({type(e).__name__}: "
                           f"{(str(e).strip().splitlines() or [''])[0][:200]})") from None
    for f in args.file:
        convs, report = load_conversations(f, on_error="skip")
        if not convs:
            reasons = "; ".join(f"{n} x {r}" for r, n in report.skipped.most_common(2))
            raise Hermes3Error(f"{f}: no valid conversations to pack ({report.read} read, all skipped: {reasons})")
        lengths = [len(tokenize_and_mask(c, tok)["input_ids"]) for c in convs]
        plan = pack(lengths, args.max_length, overlong=args.overlong)
        if plan.num_rows == 0:
            raise Hermes3Error(f"{f}: every conversation is longer than --max-length {args.max_length} "
                               "(use a larger --max-length, or --overlong truncate|split)")
        print(json.dumps({"file": str(f), **plan.summary(), "skipped_records": sum(report.skipped.values())}))
    return 0


def cmd_data_build(args) -> int:
    from hermes3.core.config import load_config
    from hermes3.data.build import DataConfig, build

    cfg = load_config(DataConfig, args.config, args.overrides)
    manifest = build(cfg)
    print(json.dumps({k: v for k, v in manifest.items() if k != "config"}, indent=2))
    print(f"written to {cfg.output()}")
    return 0


def cmd_base(args) -> int:
    from hermes3.core.config import load_config
    from hermes3.train.base_model import BaseConfig, pretrain

    cfg = load_config(BaseConfig, args.config, ([f"size={args.size}"] if args.size else []) + args.overrides)
    out = pretrain(cfg)
    print((out / "metrics.json").read_text())
    print(f"model in {out}")
    return 0


def cmd_eval(args) -> int:
    from hermes3.eval.evaluate import evaluate

    if args.out:
        from hermes3.core.outputs import check_writable

        check_writable(args.out, "--out folder")
    res = evaluate(args.model, args.suite, data_dir=args.data, limit=args.limit, batch_size=args.batch_size,
                   max_gen_toks=args.max_gen_toks, add_bos_token=args.add_bos_token,
                   apply_chat_template=args.apply_chat_template, out_dir=args.out, backend=args.backend, split=args.split)
    print(res.table[res.table.primary].to_string(index=False))
    return 0


def cmd_sft(args) -> int:
    from hermes3.core.config import load_config
    from hermes3.train.sft import SFTConfig, train

    cfg = load_config(SFTConfig, args.config, [*args.overrides] + (["resume=true"] if args.resume else []))
    out = train(cfg)
    print(f"SFT run in {out}")
    return 0


def cmd_plan(args) -> int:
    from hermes3.core.errors import InputFileError
    from hermes3.core.limits import read_json_file
    from hermes3.train.plan import load_recipe, min_nodes, recipe_plan

    cfg = load_recipe(args.config, args.overrides)  # SFT or DPO
    arch = dict(cfg.model_config)
    source = f"{args.config}: model_config"
    if not arch:
        cfg_file = Path(cfg.model) / "config.json"
        if not cfg_file.exists():
            raise Hermes3Error(f"{args.config} has no model_config and {cfg_file} does not exist")
        try:  # a FIFO, a huge or a deeply nested file included
            arch = read_json_file(cfg_file)
        except InputFileError as e:
            raise Hermes3Error(f"{cfg_file}: not a readable JSON model config ({e.problem})") from None
        source = str(cfg_file)
    planner, kw = recipe_plan(cfg)
    try:
        p = planner(arch, cfg.cluster, **kw)
    except Hermes3Error:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as e:  # transformers on a bad architecture
        raise Hermes3Error(f"{source}: not an architecture transformers can build ({type(e).__name__}: "
                           f"{(str(e).strip().splitlines() or [''])[0][:200]})") from None
    print(p.table())
    m = min_nodes(arch, cfg.cluster, planner=planner, **kw)
    print(f"minimum nodes for this layout ({'with' if cfg.cluster.cpu_offload else 'without'} CPU offload): {m}")
    if not p.fits:
        print(f"hermes3 plan: this layout does not fit: {p.reason}.", file=sys.stderr)
        return 2
    return 0


def cmd_lr_search(args) -> int:
    from hermes3.core.config import load_config
    from hermes3.recipe.selection import lr_search
    from hermes3.train.sft import SFTConfig

    cfg = load_config(SFTConfig, args.config, args.overrides)
    scores, best = lr_search(cfg, args.lrs, data_dir=args.data or cfg.data, group=args.group, limit=args.limit,
                             metric=args.metric)
    print(scores.to_string(index=False))
    print(f"selected lr: {best:g}")
    return 0


def cmd_dpo(args) -> int:
    from hermes3.core.config import load_config
    from hermes3.train.dpo import DPOConfig, train

    cfg = load_config(DPOConfig, args.config, [*args.overrides] + (["resume=true"] if args.resume else []))
    out = train(cfg)
    if os.environ.get("RANK", "0") == "0":  # under torchrun every rank returns; rank 0 wrote the results
        print((out / "heldout.json").read_text())
        print(f"DPO run in {out} (merged model in {out / 'merged'})")
    return 0


def cmd_fp8(args) -> int:
    from hermes3.convert.fp8 import convert

    rep = convert(args.model_dir, args.out_dir, ignore=tuple(args.ignore), overwrite=args.overwrite)
    print(f"quantized {rep.quantized} Linear weights, kept {rep.kept} tensors; "
          f"{rep.bytes_in / 1e6:.1f} MB -> {rep.bytes_out / 1e6:.1f} MB ({rep.ratio:.3f}) in {args.out_dir}")
    return 0


def cmd_reproduce(args) -> int:
    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    if names:  # same matching rule as pipeline.notebooks: stem, file name or the two-digit number
        nbs = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py"))
        unknown = [n for n in names if not any(n in (p.stem, p.name, p.name[:2]) for p in nbs)]
        if unknown:
            raise Hermes3Error(f"--only: unknown notebook {unknown[0]!r}; known: "
                               f"{', '.join(p.name[:2] for p in nbs)} (or a full name such as {nbs[0].stem})")
    # The notebooks' kernels (and their jobs) inherit these.
    if args.executor:
        os.environ["HERMES3_EXECUTOR"] = args.executor
    if args.cluster:
        os.environ["HERMES3_CLUSTER"] = str(Path(args.cluster).resolve())
    if args.no_wait:
        os.environ["HERMES3_WAIT"] = "0"
    from hermes3.recipe.stages import Recipe

    recipe = Recipe(args.scale)  # refuses here, in one line, a scale this machine cannot train
    if args.dry_run:
        from hermes3.recipe.dryrun import describe

        print(describe(recipe))
        return 0
    from hermes3.recipe.pipeline import StageError, run_notebooks

    t0 = time.time()
    try:
        times = run_notebooks(args.scale, names=names)
    except StageError as e:  # (a RuntimeError, not a Hermes3Error) one line all the same
        if "JobsPending: " in str(e):  # --no-wait: submitted, nothing failed
            print(str(e).split("JobsPending: ", 1)[1].split(" (traceback in")[0])
            return 0
        raise Hermes3Error(str(e)) from None
    for name, sec in times:
        print(f"{name:28s} {sec:7.0f} s")
    if args.scale == "demo":
        from hermes3.core.paths import figures_dir
        from hermes3.recipe import gallery

        try:
            gallery.write(recipe.manifest(), figures_dir(), REPO / "README.md")
            print("README gallery and figures/gallery.md written from the manifest")
        except KeyError as e:
            print(f"README gallery not updated: the manifest has no stage {e} yet (run every notebook)")
    where = "notebooks/ and figures/" if args.scale == "demo" else f"{runs(args.scale, 'notebooks')}"
    print(f"{'total':28s} {time.time() - t0:7.0f} s; executed notebooks and figures in {where}")
    return 0


def cmd_chat(args) -> int:
    from hermes3.cli import chat as chat_cli

    return chat_cli.main(args)


def cmd_wandb_report(args) -> int:
    from hermes3.cli import wandb_report

    return wandb_report.main(args)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere, so it can be added at the end of any command
    argv = [a for a in argv if a != "--debug"]
    p = ArgumentParser(prog="hermes3", description="Hermes 3 post-training recipe, reproducible.")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")
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
    sp.add_argument("--tokenizer", default=None, help="tokenizer folder, Hub id or tiktoken file (default: the "
                    "demo data build's, runs/data/demo/tokenizer, offline; e.g. NousResearch/Hermes-3-Llama-3.1-8B)")
    sp.add_argument("--max-length", type=positive_int, default=8192)
    sp.add_argument("--overlong", default="drop", choices=["drop", "truncate", "split"])
    sp.set_defaults(fn=cmd_pack_stats)
    sp = sub.add_parser("data", help="data stage")
    dsub = sp.add_subparsers(dest="data_cmd", required=True)
    b = dsub.add_parser("build", help="build the SFT mixture, preference pairs, eval items and statistics")
    b.add_argument("--config", default=str(REPO / "configs" / "data" / "demo.yaml"))
    b.add_argument("overrides", nargs="*", help="key=value overrides, e.g. seed=1 filters.min_tokens=32")
    b.set_defaults(fn=cmd_data_build)
    sp = sub.add_parser("base", help="pre-train (or reuse) the tiny base model on the demo corpora")
    sp.add_argument("--size", default=None, choices=["tiny-s", "tiny-m", "tiny-l"], help="default: tiny-m, or the config's")
    sp.add_argument("--config", default=None, help="YAML with BaseConfig keys")
    sp.add_argument("overrides", nargs="*", help="key=value overrides, e.g. steps=200 data=runs/data/smoke")
    sp.set_defaults(fn=cmd_base)
    sp = sub.add_parser("sft", help="supervised fine-tuning (report §4.1)")
    sp.add_argument("--config", default=str(REPO / "configs" / "sft" / "tiny.yaml"))
    sp.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint")
    sp.add_argument("overrides", nargs="*", help="key=value overrides, e.g. lr=1e-3 max_steps=10")
    sp.set_defaults(fn=cmd_sft)
    sp = sub.add_parser("dpo", help="DPO with a LoRA adapter on packed preference batches (report §4.2)")
    sp.add_argument("--config", default=str(REPO / "configs" / "dpo" / "tiny.yaml"))
    sp.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint")
    sp.add_argument("overrides", nargs="*")
    sp.set_defaults(fn=cmd_dpo)
    sp = sub.add_parser("fp8", help="FP8_DYNAMIC conversion for vLLM (compressed-tensors format), shard by shard")
    sp.add_argument("model_dir")
    sp.add_argument("out_dir")
    sp.add_argument("--ignore", nargs="*", default=["lm_head"])
    sp.add_argument("--overwrite", action="store_true")
    sp.set_defaults(fn=cmd_fp8)
    sp = sub.add_parser("lr-search", help="train one model per LR and score each on the GPT4All group (Fig. 2)")
    sp.add_argument("--config", default=str(REPO / "configs" / "sft" / "tiny.yaml"))
    sp.add_argument("--lrs", required=True, type=learning_rates, help="comma-separated, e.g. 5e-6,6e-6,7e-6,8e-6,9e-6,10e-6")
    sp.add_argument("--group", default="gpt4all_standin")
    sp.add_argument("--metric", default="likelihood", choices=["likelihood", "benchmarks"],
                    help="held-out answer log-likelihood (notebook 03's) or generated benchmark scores")
    sp.add_argument("--data", default=None, help="data build with the held-out items (default: the config's data)")
    sp.add_argument("--limit", type=positive_int, default=None)
    sp.add_argument("overrides", nargs="*")
    sp.set_defaults(fn=cmd_lr_search)
    sp = sub.add_parser("plan", help="memory per GPU, tokens per step and steps per epoch of a recipe (meta device)")
    sp.add_argument("--config", required=True)
    sp.add_argument("overrides", nargs="*", help="key=value overrides, e.g. cluster.nodes=7 cluster.cpu_offload=true")
    sp.set_defaults(fn=cmd_plan)
    sp = sub.add_parser("eval", help="benchmarks through lm-evaluation-harness")
    sp.add_argument("model", help="model folder or Hugging Face id")
    sp.add_argument("--suite", default="offline", help="offline (12 tasks) | standins (the 11 of the four groups) | gpt4all | agieval | leaderboard | table5 | a stand-in group")
    sp.add_argument("--data", default=str(runs("data", "demo")), help="data build with the held-out items")
    sp.add_argument("--limit", type=positive_int, default=None)
    sp.add_argument("--split", default="test", choices=["validation", "test"],
                    help="held-out split of the offline tasks: validation (to choose on) or test (to report)")
    sp.add_argument("--batch-size", type=positive_int, default=16)
    sp.add_argument("--max-gen-toks", type=positive_int, default=192)
    sp.add_argument("--add-bos-token", action="store_true", help="Llama models: the report's lm-eval setting")
    sp.add_argument("--apply-chat-template", action="store_true", help="hub suites on chat models")
    sp.add_argument("--backend", default="hf", choices=["hf", "vllm"])
    sp.add_argument("--out", default=None, help="folder for results.json, samples and scores.csv")
    sp.set_defaults(fn=cmd_eval)
    for name in ("reproduce", "demo"):  # `demo` kept as the short name make demo has always used
        sp = sub.add_parser(name, help="run every notebook in order (data -> base -> LR search -> SFT -> epoch "
                                       "selection -> DPO -> FP8 -> benchmarks); finished stages are reused")
        sp.add_argument("--scale", default="demo", choices=["smoke", "demo", "full"])
        sp.add_argument("--only", default="", help="comma-separated notebooks, e.g. 05,06 (default: all)")
        sp.add_argument("--executor", default=None, choices=["local", "slurm"],
                        help="where the stage jobs run (default: $HERMES3_EXECUTOR, the cluster file's, else local)")
        sp.add_argument("--cluster", default=None, help="cluster file (YAML: partition, account, qos, ...; "
                                                        "see configs/cluster/slurm.yaml); sets $HERMES3_CLUSTER")
        sp.add_argument("--no-wait", action="store_true", help="submit the jobs and return; run again to follow them")
        sp.add_argument("--dry-run", action="store_true", help="print the job plan (stages, dependencies, nodes x "
                                                               "GPUs, time limits, memory per GPU); submit nothing")
        sp.set_defaults(fn=cmd_reproduce)
    sp = sub.add_parser("chat", help="chat in the terminal with a model folder or an OpenAI-compatible server "
                                     "(streams; shows tool calls and reasoning tags parsed)")
    sp.add_argument("model", nargs="?", default=None, help="model folder or Hub id; with --url, the served model "
                    "name (default: the server's only model)")
    sp.add_argument("--url", default=None, help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (vLLM)")
    sp.add_argument("--api-key", default=None, help="with --url (default: $OPENAI_API_KEY, else 'EMPTY')")
    sp.add_argument("--system", default=None, help="system prompt")
    sp.add_argument("--tools", default=None, help="JSON file: a list of OpenAI-style tool definitions")
    sp.add_argument("--max-new-tokens", type=positive_int, default=256)
    sp.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    sp.add_argument("--timeout", type=float, default=120.0, help="seconds per request, with --url")
    sp.set_defaults(fn=cmd_chat)
    sp = sub.add_parser("wandb-report", help="a W&B Report per report item from the logged runs (offline: its spec)")
    sp.add_argument("--entity", default=os.environ.get("WANDB_ENTITY"), help="W&B entity (default: $WANDB_ENTITY; "
                    "online needs it or WANDB_API_KEY)")
    sp.add_argument("--project", default="hermes3")
    sp.add_argument("--offline", action="store_true", help="write the spec only (default without WANDB_API_KEY/--entity)")
    sp.add_argument("--out", default=None, help="offline spec file (default: runs/wandb/report.json)")
    sp.add_argument("--check", default=None, metavar="WANDB_DIR", help="first check every panel key against the runs "
                    "in this folder, e.g. runs/wandb/wandb (exit 2 when one has no data)")
    sp.set_defaults(fn=cmd_wandb_report)
    try:
        args = p.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2, already printed as one line)
        return e.code if isinstance(e.code, int) else 2
    cmd = " ".join(filter(None, (args.cmd, getattr(args, "data_cmd", None))))
    try:
        return args.fn(args)
    except (Hermes3Error, OSError) as e:  # the one place: one clear line, not a traceback
        # OSError: an output path the checks could not foresee (a read-only mount, a full disk)
        if debug:
            raise
        print(f"hermes3 {cmd}: {' '.join(str(e).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
