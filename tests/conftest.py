"""Shared fixtures. Data from ../shared/data is optional: tests that need it skip without it."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import jinja2.sandbox
import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "sources"
SHARED = ROOT.parent / "shared" / "data"
OFFICIAL_TEMPLATE = SHARED / "hermes_chat_templates" / "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja"
CHATML_TEMPLATE = SHARED / "hermes_chat_templates" / "chatml.j2"
LLAMA3_TIKTOKEN = SHARED / "tokenizer_llama3" / "tokenizer.model"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not present (../shared/data is optional)")
    return path


def hf_jinja_env():
    """A plain jinja2 environment configured as Hugging Face renders chat templates:
    trim/lstrip blocks and a tojson that does not HTML-escape (Jinja's own does)."""
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda x, ensure_ascii=False, indent=None, separators=None, sort_keys=False: json.dumps(
        x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
    return env


@pytest.fixture(scope="session")
def official():
    """Render with the official Hermes 3 tool_use template (tools given) or chatml.j2."""
    env = hf_jinja_env()
    tool_use = env.from_string(need(OFFICIAL_TEMPLATE).read_text())
    chatml = env.from_string(need(CHATML_TEMPLATE).read_text())

    def render(messages, tools=None, add_generation_prompt=False, bos_token=""):
        if tools is None:
            return bos_token + chatml.render(messages=messages, add_generation_prompt=add_generation_prompt)
        return tool_use.render(messages=messages, tools=tools, add_generation_prompt=add_generation_prompt,
                               bos_token=bos_token)

    return render


@pytest.fixture(scope="session")
def tiny_tok():
    from corpus import corpus

    from hermes3.format.chat import render
    from hermes3.format.tokenizer import build_tokenizer

    texts = [render(c["messages"], c["tools"]) for c in corpus()]
    return build_tokenizer(texts * 3, vocab_size=1024)


@pytest.fixture(scope="session")
def llama3_tok():
    from hermes3.format.tokenizer import load_tokenizer

    return load_tokenizer(need(LLAMA3_TIKTOKEN))


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory):
    """A smoke-size `hermes3 data build` (a few seconds), shared by the tests that need one."""
    from hermes3.core.config import load_config
    from hermes3.data.build import DataConfig, build

    cfg = load_config(DataConfig, ROOT / "configs/data/smoke.yaml", [f"out_dir={tmp_path_factory.mktemp('data') / 'smoke'}"])
    build(cfg, progress=False)
    return cfg.output()


def make_tiny_model(folder: Path, tokenizer_dir: Path, seed: int = 0, hidden_size: int = 32,
                    vocab_size: int | None = None) -> Path:
    """A randomly initialised tiny Llama plus tokenizer saved in ``folder`` (a 'base model'); a
    ``vocab_size`` above the tokenizer's adds rows no token uses (to reach the fused LM head)."""
    from transformers import AutoTokenizer

    from hermes3.train.modeling import tiny_llama

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    tiny_llama(vocab_size or len(tok), hidden_size=hidden_size, num_layers=2, num_heads=2, seed=seed).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


class unblocking:
    """After ``seconds``, opens every FIFO below ``folder`` for writing, so that a reader blocked
    in open() or read() gets EOF; ``fired`` says whether it had to. A separate process, not a
    thread: a native open() (safetensors' Rust ``safe_open``) blocks holding the GIL."""

    RELEASE = ("import os, stat, sys, time, pathlib\n"
               "time.sleep(float(sys.argv[2]))\n"
               "for f in pathlib.Path(sys.argv[1]).rglob('*'):\n"
               "    if stat.S_ISFIFO(f.lstat().st_mode):\n"
               "        try:\n"
               "            os.close(os.open(f, os.O_WRONLY | os.O_NONBLOCK))\n"
               "        except OSError:\n"
               "            pass\n")

    def __init__(self, folder: Path, seconds: float = 20):
        self.folder, self.seconds, self.fired = folder, seconds, False

    def __enter__(self):
        import subprocess
        import sys

        self.proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", self.RELEASE, str(self.folder), str(self.seconds)])
        return self

    def __exit__(self, *exc):
        self.fired = self.proc.poll() is not None
        if not self.fired:
            self.proc.kill()
        self.proc.wait()


def tree(root: Path) -> set[str]:
    return {str(q.relative_to(root)) for q in root.rglob("*")}
