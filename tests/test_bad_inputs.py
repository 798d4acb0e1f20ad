"""Every bad input is one line: exit code 2, no traceback, the culprit named (issue: 84 bad
inputs tried, 29 tracebacks, 5 accepted wrongly). One table, run in-process through
``hermes3.cli.main.main``; a few cases also as a real subprocess.

Each row: an id, the command line (``{d}`` is the folder of prepared bad files and model
folders), a piece of text the one line must contain (the file and line or record, the key,
what was expected) and, where the command would write, a path that must not exist after.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import ROOT, make_tiny_model, tree, unblocking
from hermes3.cli.main import main

SFT = f"sft --config {ROOT}/configs/sft/tiny.yaml output_dir={{d}}/sft_out"
DPO = f"dpo --config {ROOT}/configs/dpo/tiny.yaml output_dir={{d}}/dpo_out"
PLAN = f"plan --config {ROOT}/configs/sft/llama3.1-8b.yaml"
BUILD = "data build out_dir={d}/build_out"
BASE = "base data={d} out_dir={d}/base_out"
LR = f"lr-search --config {ROOT}/configs/sft/tiny.yaml --lrs 1e-3 output_dir={{d}}/lr_out"
GOOD = {"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]}


@dataclass
class Case:
    id: str
    argv: str
    culprit: str
    absent: str | None = None


def files(d: Path) -> None:
    """The bad (and a few good) input files, written once for the whole table."""
    good = json.dumps(GOOD)
    w = lambda name, text: (d / name).write_text(text, encoding="utf-8")  # noqa: E731
    wb = lambda name, data: (d / name).write_bytes(data)  # noqa: E731
    w("good.jsonl", good + "\n")
    w("truncated.json", '{"messages": [')
    w("trailing_comma.json", '[\n  {"messages": []},\n]')
    w("lines.json", good + "\n" + good + "\n")
    w("number.json", "42")
    w("string_record.json", f"[{good}, \"oops\"]")
    w("empty_list.json", "[]")
    w("zero.json", "")
    w("bad_line3.jsonl", good + "\n" + good + "\n{not json\n")
    w("list_line.jsonl", "[1, 2]\n")
    wb("latin1_line2.jsonl", (good + "\n").encode() + '{"messages": "café"}\n'.encode("latin-1"))
    wb("latin1.json", '[{"messages": "café"}]'.encode("latin-1"))
    wb("utf16.jsonl", (good + "\n").encode("utf-16"))
    w("empty.jsonl", "")
    w("blank.jsonl", "\n  \n\n")
    wb("bom_bad_line2.jsonl", b"\xef\xbb\xbf" + (good + "\n{oops\n").encode())
    w("notes.txt", good)
    w("no_assistant.jsonl", json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    w("bad_role.jsonl", json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}]}) + "\n")
    w("unknown_shape.jsonl", json.dumps({"text": "hello"}) + "\n")
    w("content_number.jsonl", json.dumps({"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "x"}]}) + "\n")
    w("calls_no_tools.jsonl", json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [
        {"function": {"name": "f", "arguments": {}}}]}]}) + "\n")
    w("sharegpt_from.jsonl", json.dumps({"conversations": [{"from": "human", "value": "hi"}, {"from": "robot", "value": "x"}]}) + "\n")
    w("messages_str.jsonl", json.dumps({"messages": "hi there"}) + "\n")
    w("two_assistants.jsonl", json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a"},
                                                       {"role": "assistant", "content": "b"}]}) + "\n")
    w("late_system.jsonl", json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "system", "content": "s"},
                                                    {"role": "assistant", "content": "b"}]}) + "\n")
    w("orphan_tool.jsonl", json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "{}"},
                                                    {"role": "assistant", "content": "b"}]}) + "\n")
    w("tools_garbage.jsonl", json.dumps({**GOOD, "tools": "[{not a list"}) + "\n")
    w("bad_with_id.jsonl", json.dumps({"id": "conv-77", "messages": [{"role": "user", "content": "hi"}]}) + "\n")
    w("third_bad.jsonl", good + "\n" + good + "\n" + json.dumps({"messages": [{"role": "wizard", "content": "x"}]}) + "\n")
    w("extra_field.jsonl", json.dumps({"messages": [{"role": "user", "content": "hi", "mood": "happy"},
                                                    {"role": "assistant", "content": "x"}]}) + "\n")
    w("long.jsonl", json.dumps({"messages": [{"role": "user", "content": "word " * 400},
                                             {"role": "assistant", "content": "ok"}]}) + "\n")
    w("all_bad.jsonl", json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    (d / "emptydir").mkdir()
    (d / "textdir").mkdir()
    w("textdir/readme.txt", "not data")
    w("afile", "a file where a folder should go")
    # configs
    w("bad.yaml", "lr: 1e-3\nepochs: [1,\n")
    w("list.yaml", "- lr\n- epochs\n")
    wb("latin1.yaml", "name: café\n".encode("latin-1"))
    w("unknown_key.yaml", "lr: 1e-3\nlearning_rate: 2e-3\n")
    w("bad_value.yaml", "warmup_steps: -5\n")
    w("nodes_zero.yaml", "cluster:\n  nodes: 0\n")
    w("cluster_scalar.yaml", "cluster: 5\n")
    w("scheduler.yaml", "scheduler: bogus\n")
    w("noarch.yaml", f"model: {d}/nope\n")
    w("arch_bogus.yaml", "model_config:\n  model_type: no-such-arch\n")
    w("noarch_badjson.yaml", f"model: {d}/badjson\n")
    w("pairs_bad.jsonl", good + "\n")


def model_folders(d: Path, tok_dir: Path) -> None:
    """A good tiny model and broken copies of it."""
    import torch
    from safetensors.torch import load_file, save_file

    m = make_tiny_model(d / "model", tok_dir, hidden_size=32)
    weights = m / "model.safetensors"
    cfg = json.loads((m / "config.json").read_text())
    for name, config in {"vit": {**cfg, "model_type": "vit"},
                         "seqcls": {**cfg, "architectures": ["LlamaForSequenceClassification"]},
                         "quantized": {**cfg, "quantization_config": {"quant_method": "compressed-tensors"}}}.items():
        (d / name).mkdir()
        (d / name / "config.json").write_text(json.dumps(config))
        shutil.copy(weights, d / name / "model.safetensors")
    (d / "noconfig").mkdir()
    shutil.copy(weights, d / "noconfig" / "model.safetensors")
    (d / "badjson").mkdir()
    (d / "badjson" / "config.json").write_text('{"model_type": "llama",')
    (d / "noweights").mkdir()
    (d / "noweights" / "config.json").write_text(json.dumps(cfg))
    shutil.copytree(m, d / "truncated")
    data = weights.read_bytes()
    (d / "truncated" / "model.safetensors").write_bytes(data[: len(data) // 2])
    shutil.copytree(m, d / "nan")
    t = load_file(weights)
    t["model.layers.0.mlp.up_proj.weight"][0, 0] = float("nan")
    save_file(t, d / "nan" / "model.safetensors", metadata={"format": "pt"})
    assert torch.isnan(load_file(d / "nan" / "model.safetensors")["model.layers.0.mlp.up_proj.weight"]).any()


@pytest.fixture(scope="module")
def d(tmp_path_factory, tiny_tok):
    d = tmp_path_factory.mktemp("bad")
    tiny_tok.save_pretrained(d / "tok")
    files(d)
    model_folders(d, d / "tok")
    return d


def file_cases() -> list[Case]:
    """Bad files through validate (and render, pack-stats, sft, base where they read files)."""
    rows = [
        ("truncated.json", "{d}/truncated.json:1: not valid JSON"),
        ("trailing_comma.json", "{d}/trailing_comma.json:3: not valid JSON"),
        ("lines.json", "{d}/lines.json:2: not valid JSON (Extra data"),
        ("number.json", "{d}/number.json: expected a JSON list of records or one record object, got a int"),
        ("string_record.json", "{d}/string_record.json: record 1: expected a JSON object"),
        ("empty_list.json", "{d}/empty_list.json: holds no records"),
        ("zero.json", "{d}/zero.json:1: not valid JSON"),
        ("bad_line3.jsonl", "{d}/bad_line3.jsonl:3: not valid JSON"),
        ("list_line.jsonl", "{d}/list_line.jsonl:1: expected a JSON object (one record), got a list"),
        ("latin1_line2.jsonl", "{d}/latin1_line2.jsonl:2: not UTF-8 (byte 0xe9"),
        ("latin1.json", "{d}/latin1.json: not UTF-8 (byte 0xe9"),
        ("utf16.jsonl", "{d}/utf16.jsonl:1: not UTF-8 (byte 0xff"),
        ("empty.jsonl", "{d}/empty.jsonl: holds no records"),
        ("blank.jsonl", "{d}/blank.jsonl: holds no records"),
        ("bom_bad_line2.jsonl", "{d}/bom_bad_line2.jsonl:2: not valid JSON"),
        ("notes.txt", "{d}/notes.txt: expected a .json or .jsonl file"),
        ("missing.jsonl", "{d}/missing.jsonl: does not exist"),
        ("no/such/dir/x.json", "{d}/no/such/dir/x.json: does not exist"),
        ("emptydir", "{d}/emptydir: is a folder with no data files"),
        ("textdir", "{d}/textdir: is a folder with no data files"),
        ("no_assistant.jsonl", "{d}/no_assistant.jsonl: record 0: conversation, field 'messages': expected at least one assistant"),
        ("bad_role.jsonl", "{d}/bad_role.jsonl: record 0: message 1, field 'role': expected one of"),
        ("unknown_shape.jsonl", "{d}/unknown_shape.jsonl: record 0: conversation, field 'record'"),
        ("content_number.jsonl", "{d}/content_number.jsonl: record 0: message 0, field 'content': expected a string, got 5"),
        ("calls_no_tools.jsonl", "record 0: message 1, field 'tool_calls': expected a 'tools' list"),
        ("sharegpt_from.jsonl", "{d}/sharegpt_from.jsonl: record 0: message 1, field 'from'"),
        ("messages_str.jsonl", "{d}/messages_str.jsonl: record 0: conversation, field 'messages'"),
        ("two_assistants.jsonl", "record 0: message 2, field 'role': expected a user or tool message between"),
        ("late_system.jsonl", "record 0: message 1, field 'role': expected 'system' only as the first message"),
        ("orphan_tool.jsonl", "record 0: message 1, field 'role': expected a tool message only after"),
        ("tools_garbage.jsonl", "record 0: conversation, field 'tools': expected a JSON list of tool schemas"),
        ("bad_with_id.jsonl", "{d}/bad_with_id.jsonl: record conv-77:"),
        ("third_bad.jsonl", "{d}/third_bad.jsonl: record 2: message 0, field 'role'"),
        ("extra_field.jsonl", "record 0: message 0, field 'mood': expected only the fields"),
    ]
    cases = [Case(f"validate-{name}", f"validate {{d}}/{name}", culprit) for name, culprit in rows]
    cases += [Case(f"render-{name}", f"render {{d}}/{name}", culprit) for name, culprit in rows[::3]]
    cases += [Case(f"sft-data-{name}", f"{SFT} data={{d}}/{name} model={{d}}/model", culprit, "{d}/sft_out")
              for name, culprit in rows[:16:2]]
    cases += [
        Case("validate-format-sharegpt-on-openai", "validate {d}/good.jsonl --format sharegpt",
             "{d}/good.jsonl: record 0: conversation, field 'conversations'"),
        Case("render-index-out-of-range", "render {d}/good.jsonl --index 3", "--index 3 is out of range: expected 0..0"),
        Case("render-index-negative", "render {d}/good.jsonl --index -1", "--index -1 is out of range"),
        Case("render-no-assistant-without-generation-prompt", "render {d}/no_assistant.jsonl", "expected at least one assistant"),
        Case("pack-stats-empty", "pack-stats {d}/empty.jsonl --tokenizer {d}/tok", "{d}/empty.jsonl: holds no records"),
        Case("pack-stats-bad-line", "pack-stats {d}/bad_line3.jsonl --tokenizer {d}/tok", "{d}/bad_line3.jsonl:3"),
        Case("pack-stats-all-skipped", "pack-stats {d}/all_bad.jsonl --tokenizer {d}/tok",
             "{d}/all_bad.jsonl: no valid conversations to pack (1 read, all skipped: 1 x messages: at least one assistant"),
        Case("pack-stats-second-file-missing", "pack-stats {d}/good.jsonl {d}/missing.jsonl --tokenizer {d}/tok",
             "{d}/missing.jsonl: does not exist"),
        Case("pack-stats-all-overlong", "pack-stats {d}/long.jsonl --tokenizer {d}/tok --max-length 16",
             "{d}/long.jsonl: every conversation is longer than --max-length 16"),
        Case("pack-stats-tokenizer-missing", "pack-stats {d}/good.jsonl --tokenizer {d}/no_tok", "tokenizer {d}/no_tok does not exist"),
        Case("pack-stats-tokenizer-not-one", "pack-stats {d}/good.jsonl --tokenizer {d}/emptydir", "tokenizer {d}/emptydir: cannot load it"),
        Case("dpo-data-not-pairs", f"{DPO} model={{d}}/model data={{d}}/pairs_bad.jsonl",
             "{d}/pairs_bad.jsonl: record 0: field 'prompt': expected a list of messages", "{d}/dpo_out"),
        Case("dpo-data-missing", f"{DPO} model={{d}}/model data={{d}}/missing.jsonl", "{d}/missing.jsonl not found", "{d}/dpo_out"),
        Case("base-no-data-build", "base data={d}/emptydir out_dir={d}/base_out", "data {d}/emptydir: no data build here",
             "{d}/base_out"),
    ]
    return cases


def config_cases() -> list[Case]:
    """Config files and key=value overrides: named by file or override, key and expectation,
    refused before any folder is created."""
    sft = [  # (override, culprit)
        ("scheduler=bogus", "override scheduler=bogus: scheduler must be one of 'linear', 'cosine'"),
        ("warmup_steps=-5", "override warmup_steps=-5: warmup_steps must be >= 0, got -5"),
        ("lr=0", "lr must be > 0, got 0"),
        ("lr=-1e-5", "lr must be > 0, got -1e-05"),
        ("lr=nan", "lr must be > 0, got nan"),
        ("lr=fast", "override lr=fast: lr: expected float, got 'fast'"),
        ("max_length=63", "max_length must be >= 64, got 63"),
        ("max_length=100", "max_length must be a multiple of 8"),
        ("max_length=1.5", "max_length: expected int, got 1.5"),
        ("overlong=wrap", "overlong must be one of 'drop', 'truncate', 'split', got 'wrap'"),
        ("loss_normalization=mean", "loss_normalization must be one of 'token', 'sample'"),
        ("bf16=maybe", "bf16 must be one of 'auto', 'true', 'false', got 'maybe'"),
        ("attn=flash3", "attn must be one of 'auto', 'flash_attention_2'"),
        ("rows_per_device=0", "rows_per_device must be >= 1, got 0"),
        ("grad_accum=0", "grad_accum must be >= 1, got 0"),
        ("max_steps=-2", "max_steps must be >= -1, got -2"),
        ("epochs=0", "set epochs > 0 or max_steps > 0 (got epochs=0, max_steps=-1)"),
        ("epochs=-1", "epochs must be >= 0, got -1"),
        ("wandb_mode=cloud", "wandb_mode must be one of '', 'offline', 'online', 'disabled', got 'cloud'"),
        ("save_steps=-1", "save_steps must be >= 0"),
        ("logging_steps=0", "logging_steps must be >= 1"),
        ("weight_decay=-0.1", "weight_decay must be >= 0"),
        ("seed=-1", "seed must be >= 0"),
        ("name=null", "override name=null: name: expected str, got None"),
        ("fsdp_config=5", "fsdp_config: expected a dict, got 5"),
        ("gradient_checkpointing=maybe", "gradient_checkpointing: expected true/false, got 'maybe'"),
        ("learning_rate=1e-3", "override learning_rate=1e-3: unknown key 'learning_rate' for SFTConfig"),
        ("cluster.gpus=8", "unknown key 'cluster.gpus' for ClusterConfig"),
        ("lr", "override 'lr': expected key=value"),
        ("lr=[1", "override lr=[1: lr: value '[1' is not valid YAML"),
        ("resume=2", "resume: expected true/false"),
    ]
    cases = [Case(f"sft-{o}", f"{SFT} {o}", c, "{d}/sft_out") for o, c in sft]
    cases += [Case(f"sft-file-{f}", f"sft --config {{d}}/{f} output_dir={{d}}/sft_out", c.replace("@F", f"{{d}}/{f}"), "{d}/sft_out")
              for f, c in [("bad.yaml", "@F:3: not valid YAML"), ("list.yaml", "@F: expected a mapping of config keys, got a list"),
                           ("latin1.yaml", "@F: byte 9 is not UTF-8"),
                           ("unknown_key.yaml", "@F: unknown key 'learning_rate' for SFTConfig"),
                           ("bad_value.yaml", "@F: warmup_steps must be >= 0, got -5"),
                           ("scheduler.yaml", "@F: scheduler must be one of"),
                           ("missing.yaml", "config file @F does not exist"), ("emptydir", "config file @F is a folder")]]
    cases += [Case(f"sft-model-{m}", f"{SFT} data={{d}}/good.jsonl model={{d}}/{m}", c.replace("M", f"model folder {{d}}/{m}"), "{d}/sft_out")
              for m, c in [("nope", "M does not exist"), ("noconfig", "M has no config.json"),
                           ("badjson", "M: config.json is not valid JSON"), ("vit", "M holds a 'vit' model, not a causal"),
                           ("seqcls", "M holds LlamaForSequenceClassification"), ("noweights", "M has no weights"),
                           ("truncated", "M: model.safetensors is damaged")]]
    cases += [Case("sft-output-under-a-file", f"{SFT} output_dir={{d}}/afile/run data={{d}}/good.jsonl model={{d}}/model",
                   "SFT output folder {d}/afile/run: {d}/afile is not a folder")]
    plan = [
        ("cluster.nodes=0", "override cluster.nodes=0: cluster.nodes must be >= 1, got 0"),
        ("cluster.nodes=-3", "cluster.nodes must be >= 1, got -3"),
        ("cluster.nodes=abc", "cluster.nodes: expected int, got 'abc'"),
        ("cluster.nodes=1.5", "cluster.nodes: expected int, got 1.5"),
        ("cluster.gpus_per_node=0", "cluster.gpus_per_node must be >= 1"),
        ("cluster.gpu_memory_gb=0", "cluster.gpu_memory_gb must be > 0"),
        ("cluster.usable_fraction=1.5", "cluster.usable_fraction must be <= 1, got 1.5"),
        ("cluster.packing_efficiency=0", "cluster.packing_efficiency must be > 0"),
        ("cluster.dataset_tokens=-1", "cluster.dataset_tokens must be > 0"),
        ("cluster.cpu_offload=maybe", "cluster.cpu_offload: expected true/false"),
        ("cluster.cpu_ram_per_node_gb=-1", "cluster.cpu_ram_per_node_gb must be >= 0"),
        ("cluster=5", "override cluster=5: cluster: expected a mapping, got 5"),
        ("cluster.nodes.x=1", "override cluster.nodes.x=1: cluster.nodes: expected int, got {{'x': 1}}"),
        ("rows_per_device=0", "rows_per_device must be >= 1"),
        ("model_config.model_type=no-such-arch", "model_config: not an architecture transformers can build"),
        ("model_config=[1]", "model_config: expected a dict"),
    ]
    cases += [Case(f"plan-{o}", f"{PLAN} {o}", c) for o, c in plan]
    cases += [
        Case("plan-file-nodes-zero", "plan --config {d}/nodes_zero.yaml", "{d}/nodes_zero.yaml: cluster.nodes must be >= 1, got 0"),
        Case("plan-file-cluster-scalar", "plan --config {d}/cluster_scalar.yaml", "{d}/cluster_scalar.yaml: cluster: expected a mapping"),
        Case("plan-missing-config", "plan --config {d}/missing.yaml", "config file {d}/missing.yaml does not exist"),
        Case("plan-no-architecture", "plan --config {d}/noarch.yaml", "has no model_config and {d}/nope/config.json does not exist"),
        Case("plan-bad-architecture-file", "plan --config {d}/arch_bogus.yaml", "{d}/arch_bogus.yaml: model_config: not an architecture"),
        Case("plan-model-config-json-broken", "plan --config {d}/noarch_badjson.yaml", "{d}/badjson/config.json: not a readable JSON"),
    ]
    base = [("steps=0", "override steps=0: steps must be >= 1, got 0"), ("warmup=0", "warmup must be >= 1"),
            ("lr=0", "lr must be > 0"), ("heldout=1", "heldout must be < 1"), ("heldout=0", "heldout must be > 0"),
            ("batch_size=0", "batch_size must be >= 1"), ("seq_len=1", "seq_len must be >= 2"),
            ("size=tiny-xl", "size must be one of 'tiny-s', 'tiny-m', 'tiny-l', got 'tiny-xl'"),
            ("bf16=sometimes", "bf16 must be one of 'auto', 'true', 'false', got 'sometimes'")]
    cases += [Case(f"base-{o}", f"{BASE} {o}", c, "{d}/base_out") for o, c in base]
    cases += [Case("base-missing-config", "base --config {d}/missing.yaml", "config file {d}/missing.yaml does not exist")]
    dpo = [("beta=0", "beta must be > 0"), ("lora_dropout=1", "lora_dropout must be < 1"), ("optimizer=sgd", "optimizer must be one of 'rmsprop'"),
           ("heldout_fraction=1", "heldout_fraction must be < 1"), ("pairs_per_step=0", "pairs_per_step must be >= 1"),
           ("lora_r=0", "lora_r must be >= 1"), ("neftune_alpha=-1", "neftune_alpha must be >= 0"),
           ("epochs=0 max_steps=-1", "set epochs > 0 or max_steps > 0"), ("lr=0", "lr must be > 0"), ("warmup_steps=-5", "warmup_steps must be >= 0")]
    cases += [Case(f"dpo-{o}", f"{DPO} {o}", c, "{d}/dpo_out") for o, c in dpo]
    cases += [Case(f"dpo-model-{m}", f"{DPO} model={{d}}/{m} data={{d}}/good.jsonl", f"model folder {{d}}/{m}", "{d}/dpo_out")
              for m in ("nope", "noconfig", "vit", "truncated")]
    build = [("vocab_size=10", "vocab_size must be >= 300"), ("total_tokens=0", "total_tokens must be >= 1"),
             ("shares.bogus=5", "shares: unknown category 'bogus'"), ("real_sources.general=[nope]", "real_sources.general: unknown source 'nope'"),
             ("real_fraction.math=2", "real_fraction.math must be in [0, 1], got 2"), ("evol_fraction=-1", "evol_fraction must be >= 0"),
             ("filters.min_tokens=-1", "filters.min_tokens must be >= 0"),
             ("filters.max_tokens=0", "filters.max_tokens must be >= 1"),
             ("filters.min_tokens=100 filters.max_tokens=10", "min_tokens (100) must be <= max_tokens (10)"),
             ("eval_per_category=-1", "eval_per_category must be >= 0"), ("foo=1", "unknown key 'foo' for DataConfig")]
    cases += [Case(f"build-{o}", f"{BUILD} {o}", c, "{d}/build_out") for o, c in build]
    cases += [Case("build-output-under-a-file", "data build out_dir={d}/afile/x total_tokens=10", "data build folder {d}/afile/x: {d}/afile is not a folder"),
              Case("build-output-in-proc", "data build out_dir=/proc/hermes3-build", "data build folder /proc/hermes3-build: "
                   "cannot create folders in /proc"),
              Case("fp8-output-in-sys", "fp8 {d}/model /sys/hermes3-fp8", "FP8 output folder /sys/hermes3-fp8: cannot create folders in /sys"),
              Case("sft-output-in-proc", f"{SFT} output_dir=/proc/hermes3-sft data={{d}}/good.jsonl model={{d}}/model",
                   "SFT output folder /proc/hermes3-sft: cannot create folders in /proc"),
              Case("build-missing-config", "data build --config {d}/missing.yaml", "config file {d}/missing.yaml does not exist")]
    cases += [Case(f"lr-search-{o}", f"{LR} {o}", c, "{d}/lr_out") for o, c in
              [("scheduler=bogus", "scheduler must be one of"), ("warmup_steps=-5", "warmup_steps must be >= 0")]]
    return cases


def argument_cases() -> list[Case]:
    return [
        Case("lr-search-lrs-abc", "lr-search --lrs abc", "hermes3 lr-search: argument --lrs: expected comma-separated learning rates > 0"),
        Case("lr-search-lrs-empty", "lr-search --lrs ''", "argument --lrs: expected comma-separated learning rates"),
        Case("lr-search-lrs-negative", "lr-search --lrs 1e-3,-1e-3", "got '1e-3,-1e-3'"),
        Case("lr-search-lrs-nan", "lr-search --lrs nan", "got 'nan'"),
        Case("lr-search-lrs-gap", "lr-search --lrs 1e-3,,2e-3", "got '1e-3,,2e-3'"),
        Case("lr-search-lrs-missing", "lr-search", "the following arguments are required: --lrs"),
        Case("lr-search-limit-zero", "lr-search --lrs 1e-3 --limit 0", "argument --limit: expected an integer >= 1, got '0'"),
        Case("pack-stats-max-length-zero", "pack-stats {d}/good.jsonl --tokenizer {d}/tok --max-length 0", "argument --max-length: expected an integer >= 1"),
        Case("pack-stats-max-length-abc", "pack-stats {d}/good.jsonl --max-length abc", "argument --max-length"),
        Case("pack-stats-overlong-wrap", "pack-stats {d}/good.jsonl --overlong wrap", "argument --overlong: invalid choice: 'wrap'"),
        Case("pack-stats-no-file", "pack-stats", "the following arguments are required: file"),
        Case("validate-format-xml", "validate {d}/good.jsonl --format xml", "argument --format: invalid choice: 'xml'"),
        Case("validate-on-error-ignore", "validate {d}/good.jsonl --on-error ignore", "argument --on-error: invalid choice"),
        Case("render-index-abc", "render {d}/good.jsonl --index abc", "argument --index: invalid int value: 'abc'"),
        Case("unknown-subcommand", "train", "argument cmd: invalid choice: 'train'"),
        Case("no-subcommand", "", "the following arguments are required: cmd"),
        Case("data-no-subcommand", "data", "the following arguments are required: data_cmd"),
        Case("base-size", "base --size tiny-xl", "argument --size: invalid choice: 'tiny-xl'"),
        Case("fp8-missing-out", "fp8 {d}/model", "the following arguments are required: out_dir"),
        Case("eval-batch-size-zero", "eval {d}/model --batch-size 0", "argument --batch-size: expected an integer >= 1"),
        Case("eval-backend", "eval {d}/model --backend tgi", "argument --backend: invalid choice: 'tgi'"),
        Case("eval-suite-bogus", "eval {d}/model --suite bogus --data {d}", "unknown suite 'bogus'"),
        Case("eval-out-under-a-file", "eval {d}/model --out {d}/afile/x", "--out folder {d}/afile/x: {d}/afile is not a folder"),
        Case("reproduce-only-unknown", "reproduce --only 99", "--only: unknown notebook '99'; known: 01"),
        Case("reproduce-only-name", "reproduce --only 05,nope", "--only: unknown notebook 'nope'"),
        Case("reproduce-scale", "reproduce --scale huge", "argument --scale: invalid choice: 'huge'"),
        Case("unknown-option", "validate {d}/good.jsonl --colour", "unrecognized arguments: --colour"),
    ]


def model_folder_cases() -> list[Case]:
    rows = [("nope", " does not exist"), ("noconfig", " has no config.json"), ("badjson", ": config.json is not valid JSON"),
            ("vit", " holds a 'vit' model"), ("seqcls", " holds LlamaForSequenceClassification"),
            ("noweights", " has no weights"), ("truncated", ": model.safetensors is damaged"), ("afile", " has no config.json")]
    cases = [Case(f"fp8-{m}", f"fp8 {{d}}/{m} {{d}}/fp8_out", f"model folder {{d}}/{m}{c}", "{d}/fp8_out")
             for m, c in rows]
    cases += [Case(f"eval-{m}", f"eval {{d}}/{m} --data {{d}}", f"model folder {{d}}/{m}") for m, _ in rows[:7]]
    cases += [
        Case("fp8-nan-weights", "fp8 {d}/nan {d}/fp8_nan", "{d}/nan: tensor model.layers.0.mlp.up_proj.weight contains NaN or Inf",
             "{d}/fp8_nan"),
        Case("fp8-already-quantized", "fp8 {d}/quantized {d}/fp8_q", "{d}/quantized is already quantized (compressed-tensors)", "{d}/fp8_q"),
        Case("fp8-out-exists", "fp8 {d}/model {d}/emptydir", "{d}/emptydir exists; pass overwrite=True (--overwrite)"),
        Case("fp8-out-under-a-file", "fp8 {d}/model {d}/afile/x", "FP8 output folder {d}/afile/x: {d}/afile is not a folder"),
        Case("fp8-out-is-a-file", "fp8 {d}/model {d}/afile --overwrite", "FP8 output folder {d}/afile: a file of that name exists"),
    ]
    return cases


CASES = file_cases() + config_cases() + argument_cases() + model_folder_cases()


def test_the_table_is_large_and_ids_unique():
    assert len(CASES) >= 100 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_line(case, d, capsys):
    code = main(shlex.split(case.argv.format(d=d)))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    ours = [line for line in err.splitlines() if line.startswith(("hermes3 ", "hermes3:"))]
    assert code == 2, err
    assert len(ours) == 1 and err.strip().splitlines()[-1] == ours[0], err
    assert case.culprit.format(d=d) in ours[0]
    if case.absent:
        assert not Path(case.absent.format(d=d)).exists()
        assert not Path(case.absent.format(d=d) + ".tmp").exists()


def test_nan_fp8_leaves_nothing_behind(d, capsys):
    assert main(["fp8", str(d / "nan"), str(d / "fp8_nan2")]) == 2
    assert not list(d.glob("fp8_nan2*"))


def test_debug_shows_the_traceback(d):
    from hermes3.core.errors import InputFileError

    with pytest.raises(InputFileError, match="bad_line3.jsonl:3"):
        main(["validate", str(d / "bad_line3.jsonl"), "--debug"])


def test_a_utf8_bom_is_accepted(d, tmp_path, capsys):
    """Windows editors write a byte-order mark: the file reads as without one."""
    for name, text in (("bom.jsonl", json.dumps(GOOD) + "\n"), ("bom.json", json.dumps([GOOD]))):
        (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + text.encode())
        assert main(["validate", str(tmp_path / name)]) == 0
        assert capsys.readouterr().err.splitlines()[0] == "read 1, kept 1, skipped 0"
    (tmp_path / "bom.yaml").write_bytes(b"\xef\xbb\xbfwarmup_steps: 7\n")
    from hermes3.core.config import load_config
    from hermes3.train.sft import SFTConfig

    assert load_config(SFTConfig, tmp_path / "bom.yaml").warmup_steps == 7


def test_validate_and_pack_stats_agree(d, capsys):
    """What validate accepts, pack-stats packs; what it rejects (no assistant turn), pack-stats skips."""
    assert main(["validate", str(d / "no_assistant.jsonl")]) == 2
    assert main(["pack-stats", str(d / "no_assistant.jsonl"), "--tokenizer", str(d / "tok")]) == 2
    assert main(["validate", str(d / "good.jsonl")]) == 0
    assert main(["pack-stats", str(d / "good.jsonl"), "--tokenizer", str(d / "tok")]) == 0
    assert main(["render", str(d / "no_assistant.jsonl"), "--generation-prompt"]) == 0
    assert capsys.readouterr().out.endswith("<|im_start|>assistant\n")


def test_every_error_class_shares_the_base():
    from hermes3.convert.fp8 import FP8Error
    from hermes3.core.config import ConfigError
    from hermes3.core.errors import Hermes3Error, InputFileError
    from hermes3.core.outputs import OutputError
    from hermes3.eval.tasks import EvalError
    from hermes3.format.chat import ConversationError
    from hermes3.train.modeling import ModelFolderError

    for cls in (ConversationError, ConfigError, InputFileError, EvalError, FP8Error, ModelFolderError, OutputError):
        assert issubclass(cls, Hermes3Error), cls


def test_declared_schedulers_exist_in_transformers():
    from transformers.trainer_utils import SchedulerType

    from hermes3.train.sft import SCHEDULERS

    assert set(SCHEDULERS) <= {s.value for s in SchedulerType}


def test_yaml_booleans_for_word_fields():
    """`bf16=false` on the command line is YAML's boolean; the str field takes it as the word."""
    from hermes3.core.config import load_config
    from hermes3.train.sft import SFTConfig

    assert load_config(SFTConfig, None, ["bf16=false"]).bf16 == "false"
    assert load_config(SFTConfig, None, ["bf16=True"]).bf16 == "true"


def test_shipped_configs_pass_the_checks():
    """The constraints refuse bad values, not the presets we ship."""
    from hermes3.core.config import check, load_config
    from hermes3.data.build import DataConfig
    from hermes3.train.base_model import BaseConfig
    from hermes3.train.dpo import DPOConfig
    from hermes3.train.sft import SFTConfig

    for cls in (SFTConfig, DPOConfig, BaseConfig, DataConfig):
        check(cls())
    for kind, cls in (("sft", SFTConfig), ("dpo", DPOConfig), ("data", DataConfig)):
        for f in sorted((ROOT / "configs" / kind).glob("*.yaml")):
            load_config(cls, f)


@pytest.mark.parametrize("argv,culprit", [
    (["validate", "{d}/truncated.json"], "hermes3 validate: {d}/truncated.json:1: not valid JSON"),
    (["plan", "--config", str(ROOT / "configs/sft/llama3.1-8b.yaml"), "cluster.nodes=0"], "cluster.nodes must be >= 1"),
    (["lr-search", "--lrs", "abc"], "hermes3 lr-search: argument --lrs"),
])
def test_as_a_real_process(argv, culprit, d):
    r = subprocess.run([sys.executable, "-m", "hermes3.cli", *[a.format(d=d) for a in argv]], capture_output=True,
                       text=True, cwd=d, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(culprit.format(d=d)) or culprit.format(d=d) in r.stderr.strip().splitlines()[-1]


def test_debug_in_a_real_process_prints_the_traceback(d):
    r = subprocess.run([sys.executable, "-m", "hermes3.cli", "--debug", "validate", str(d / "truncated.json")],
                       capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert r.returncode == 1 and "Traceback" in r.stderr and "InputFileError" in r.stderr


# ------------------------------------------------------------------ pathological files (issue 36)
# Each family is refused by a check of its own (hermes3.core.limits: a depth limit, a size
# limit, "not a regular file", an alias-expansion limit), in one exact line naming the file,
# with nothing written. The FIFO cases would block a plain open() forever: `unblocking` opens
# each FIFO for writing after a while (an EOF for any reader) and the test then fails.

DEEP = 100_000  # what ended `hermes3 validate` in a RecursionError traceback


def pathological(p: Path) -> None:
    import os
    import socket

    from hermes3.core.limits import MAX_JSON_FILE_BYTES, MAX_LINE_BYTES, MAX_YAML_BYTES

    good = json.dumps(GOOD)
    w = lambda name, text: (p / name).write_text(text, encoding="utf-8")  # noqa: E731
    w("deep_list.json", "[" * DEEP + "]" * DEEP)
    w("deep_obj.json", '{"a":' * DEEP + "1" + "}" * DEEP)
    w("deep_line2.jsonl", good + "\n" + '{"messages":' + "[" * DEEP + "]" * DEEP + "}\n")
    w("deep_101.jsonl", "[" * 101 + "]" * 101 + "\n")
    w("deep_mixed.jsonl", good + "\n" + good + "\n" + "[{" * 51 + "}]" * 51 + "\n")
    w("deep_tools.json", '[{"type": "function", "function": ' + '{"a":' * DEEP + "1" + "}" * DEEP + "}]")
    w("deep_flow.yaml", "fsdp_config: " + "[" * DEEP + "]" * DEEP + "\n")
    w("deep_block.yaml", "".join("  " * i + f"k{i}:\n" for i in range(150)) + "  " * 150 + "v: 1\n")
    # brackets inside strings do not count: these are good records
    w("brackets_in_strings.jsonl", json.dumps({"messages": [{"role": "user", "content": "[" * DEEP + '\\"{' * 200},
                                                            {"role": "assistant", "content": "]" * 300}]}) + "\n")
    big = '{"messages": "' + "a" * MAX_LINE_BYTES + '"}'
    w("huge_line1.jsonl", big + "\n")
    w("huge_line3.jsonl", good + "\n" + good + "\n" + big)  # the last line, no newline after it
    w("huge_blank.jsonl", " " * (MAX_LINE_BYTES + 1) + "\n")
    for name, size in (("huge.json", MAX_JSON_FILE_BYTES + 1), ("huge_tools.json", MAX_JSON_FILE_BYTES + 1),
                       ("huge.yaml", MAX_YAML_BYTES + 1)):
        with open(p / name, "wb") as f:  # sparse: refused on its size, never read
            f.truncate(size)
    for name in ("fifo.jsonl", "fifo.json", "fifo.parquet", "fifo", "fifo.yaml", "fifo_tools.json"):
        os.mkfifo(p / name)
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(p / "sock.jsonl"))
    s.close()
    (p / "adir.json").mkdir()
    laughs = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + "".join(
        f"{c}: &{c} [{', '.join(['*' + b] * 9)}]\n" for b, c in zip("abcdefgh", "bcdefghi"))
    w("laughs.yaml", laughs)
    w("laughs_known_key.yaml", "fsdp_config:\n" + "".join("  " + line for line in laughs.splitlines(True)))
    w("laughs_map.yaml", "fsdp_config:\n  a: &a {x0: 1, x1: 1, x2: 1, x3: 1, x4: 1, x5: 1, x6: 1, x7: 1, x8: 1, x9: 1}\n"
      + "".join(f"  {c}: &{c} {{{', '.join(f'y{i}: *{b}' for i in range(10))}}}\n" for b, c in zip("abcdefgh", "bcdefghi")))


LAUGHS = "[&a [1,1,1,1,1,1,1,1,1,1], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], " \
         "&d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d], [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]]"
SFT_P = f"sft --config {ROOT}/configs/sft/tiny.yaml output_dir={{p}}/sft_out"
NESTED = "JSON nested deeper than 100 levels (MAX_DEPTH); refused before parsing"
LONG = "line longer than 16,777,216 bytes (MAX_LINE_BYTES); refused before parsing"
WHOLE = "over the {limit:,}-byte limit for a file read whole"
TOOLS = "(expected a JSON list of tool definitions)"
YAML_CFG = "(expected a YAML config file)"
BOMB = "YAML expands to more than 100,000 values with its aliases resolved (an alias bomb?); refused before building it"


def pathological_cases() -> list[tuple[str, str, str]]:
    """(family-variant id, command line, the exact one line); ``{p}`` is the folder of files."""
    from hermes3.core.limits import MAX_JSON_FILE_BYTES, MAX_YAML_BYTES

    whole = WHOLE.format(limit=MAX_JSON_FILE_BYTES)
    deep = [("deep_list.json", f"{{p}}/deep_list.json: {NESTED}"), ("deep_obj.json", f"{{p}}/deep_obj.json: {NESTED}"),
            ("deep_line2.jsonl", f"{{p}}/deep_line2.jsonl:2: {NESTED}"), ("deep_101.jsonl", f"{{p}}/deep_101.jsonl:1: {NESTED}"),
            ("deep_mixed.jsonl", f"{{p}}/deep_mixed.jsonl:3: {NESTED}")]
    huge = [("huge_line1.jsonl", f"{{p}}/huge_line1.jsonl:1: {LONG}"), ("huge_line3.jsonl", f"{{p}}/huge_line3.jsonl:3: {LONG}"),
            ("huge_blank.jsonl", f"{{p}}/huge_blank.jsonl:1: {LONG}"),
            ("huge.json", f"{{p}}/huge.json: is {MAX_JSON_FILE_BYTES + 1:,} bytes, {whole}")]
    special = [("fifo.jsonl", "{p}/fifo.jsonl: not a regular file (a FIFO)"), ("fifo.json", "{p}/fifo.json: not a regular file (a FIFO)"),
               ("fifo.parquet", "{p}/fifo.parquet: not a regular file (a FIFO)"), ("fifo", "{p}/fifo: not a regular file (a FIFO)"),
               ("sock.jsonl", "{p}/sock.jsonl: not a regular file (a socket)"),
               ("/dev/null", "/dev/null: not a regular file (a device)"), ("/dev/zero", "/dev/zero: not a regular file (a device)")]
    cases = []
    for family, rows in (("deep", deep), ("huge", huge), ("special", special)):
        for f, line in rows:
            path = f if f.startswith("/") else f"{{p}}/{f}"
            cases += [(f"{family}-{cmd}-{f}", f"{cmd} {path}", f"hermes3 {cmd}: {line}") for cmd in ("validate", "render")]
            cases.append((f"{family}-sft-data-{f}", f"{SFT_P} data={path} model={{d}}/model", f"hermes3 sft: {line}"))
        f, line = rows[0]
        cases.append((f"{family}-pack-stats-{f}", f"pack-stats {{p}}/good.jsonl {{p}}/{f} --tokenizer {{d}}/tok",
                      f"hermes3 pack-stats: {line}"))
    tools = [("deep_tools.json", f"{{p}}/deep_tools.json: {NESTED}"),
             ("huge_tools.json", f"{{p}}/huge_tools.json: is {MAX_JSON_FILE_BYTES + 1:,} bytes, {whole} {TOOLS}"),
             ("fifo_tools.json", f"{{p}}/fifo_tools.json: not a regular file (a FIFO) {TOOLS}"),
             ("/dev/zero", f"/dev/zero: not a regular file (a device) {TOOLS}"),
             ("adir.json", f"{{p}}/adir.json: not a regular file (a folder) {TOOLS}")]
    cases += [(f"tools-{f}", f"chat unused-model --tools {f if f.startswith('/') else '{p}/' + f}", f"hermes3 chat: {line}")
              for f, line in tools]
    configs = [("deep_flow.yaml", "{p}/deep_flow.yaml:1: YAML nested deeper than 100 levels; refused before parsing"),
               ("deep_block.yaml", "{p}/deep_block.yaml:101: YAML nested deeper than 100 levels; refused before parsing"),
               ("huge.yaml", f"{{p}}/huge.yaml: is {MAX_YAML_BYTES + 1:,} bytes, {WHOLE.format(limit=MAX_YAML_BYTES)} {YAML_CFG}"),
               ("fifo.yaml", f"{{p}}/fifo.yaml: not a regular file (a FIFO) {YAML_CFG}"),
               ("/dev/zero", f"/dev/zero: not a regular file (a device) {YAML_CFG}"),
               ("laughs.yaml", f"{{p}}/laughs.yaml:6: {BOMB}"), ("laughs_known_key.yaml", f"{{p}}/laughs_known_key.yaml:7: {BOMB}"),
               ("laughs_map.yaml", f"{{p}}/laughs_map.yaml:6: {BOMB}")]
    cases += [(f"config-{f}", f"sft --config {f if f.startswith('/') else '{p}/' + f} output_dir={{p}}/sft_out",
               f"hermes3 sft: config file {line}") for f, line in configs]
    cases += [(f"plan-config-{f}", f"plan --config {{p}}/{f}", f"hermes3 plan: config file {line}") for f, line in configs[::3]]
    override = ("fsdp_config=" + LAUGHS, "[[" * 51 + "]]" * 51)
    cases += [("override-laughs", f"{SFT_P} '{override[0]}'", f"hermes3 sft: override {override[0]}: fsdp_config: {BOMB}"),
              ("override-deep", f"{SFT_P} 'fsdp_config={override[1]}'",
               f"hermes3 sft: override fsdp_config={override[1]}: fsdp_config: YAML nested deeper than 100 levels; refused before parsing")]
    return cases


PATHOLOGICAL = pathological_cases()


@pytest.fixture(scope="module")
def p(d):
    p = d / "pathological"
    p.mkdir()
    (p / "good.jsonl").write_text(json.dumps(GOOD) + "\n")
    pathological(p)
    return p


@pytest.mark.parametrize("family", ["deep", "huge", "special", "tools", "config", "plan", "override"])
def test_pathological_files_get_one_exact_line(family, d, p, capsys):
    rows = [c for c in PATHOLOGICAL if c[0].startswith(family + "-")]
    assert len(rows) >= 2
    for id_, argv, line in rows:
        before = tree(p)
        with unblocking(p) as guard:
            code = main(shlex.split(argv.format(d=d, p=p)))
        err = capsys.readouterr().err
        assert not guard.fired, f"{id_}: blocked on a FIFO"
        assert code == 2 and "Traceback" not in err, (id_, err[-2000:])
        assert err.strip().splitlines() == [line.format(d=d, p=p)], id_
        assert tree(p) == before, (id_, tree(p) ^ before)


def test_brackets_inside_strings_are_not_nesting(p, capsys):
    """The depth check counts structure, not text: a string full of brackets and escaped quotes
    is a good record; 100 levels pass, 101 do not."""
    from hermes3.core.errors import InputFileError
    from hermes3.core.limits import MAX_DEPTH, load_json

    assert main(["validate", str(p / "brackets_in_strings.jsonl")]) == 0
    assert capsys.readouterr().err.splitlines()[0] == "read 1, kept 1, skipped 0"
    assert load_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH, "x") == eval("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    with pytest.raises(InputFileError, match="nested deeper"):
        load_json(b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1), "x")


def test_deep_json_in_a_real_process(p):
    r = subprocess.run([sys.executable, "-m", "hermes3.cli", "validate", str(p / "deep_list.json")], capture_output=True,
                       text=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert r.returncode == 2 and r.stderr == f"hermes3 validate: {p}/deep_list.json: {NESTED}\n"
