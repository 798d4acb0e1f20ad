"""README.md and docs/*.md run as written: every documented ``hermes3`` command and every ```python block, offline.

Docs drift from code (alignment-handbook PR #223; open-instruct's docs calling a deleted script), so
this test reads README.md and runs what it documents.

**What counts as a command** (the extraction rule):

* a line of a ```bash / ```sh / ```shell / ```console block that starts with ``hermes3 `` (after an
  optional ``$ `` prompt; a trailing ``# comment`` is dropped, ``\\``-continued lines are joined);
* an inline `code` span outside fenced blocks (it may wrap across lines) that starts with
  ``hermes3 <word>`` where ``<word>`` is a subcommand-like name followed by a space or the end of the
  span. ``hermes3 reproduce: stage ... failed`` and ``hermes3 <command>: <message>`` are *output* the
  README quotes, not commands;
* an inline span that launches the CLI through another program (``accelerate launch ... -m hermes3.cli sft ...``).

**How each runs.** A command that is not in ``COMMANDS`` runs exactly as written (through the console
script next to ``sys.executable``) and must exit 0. ``COMMANDS`` is the one reviewed table of exceptions,
each with its reason: a smoke-scale substitution (the smoke data config, a few steps), a placeholder
(``FILE``, ``CKPT``, ``OUT``, ``validate|render``, ``[optional parts]``) filled with a real embedded file,
or a command that needs what no test machine has (a Hub model or dataset, a GPU, vLLM, a cluster),
asserted to fail *cleanly*: exit 2 and a last line ``hermes3 <command>: ...`` naming what is missing,
no traceback. A README command with a placeholder that is not in the table, or a table entry whose
command left the README, fails the test with what to add or remove.

Everything runs in README order against one runs root (data build -> base -> SFT -> LR search -> DPO ->
FP8 -> eval), so each command finds what the earlier ones built. The working directory is the checkout,
as for a user; every output root (runs, figures, W&B, NLTK data, eval cache) is a temporary folder, and
the Hub is off (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE, HF_DATASETS_OFFLINE; W&B disabled).

Also checked without running anything heavy: every ``make`` target the README names exists in the
Makefile, every checkout path it names exists, every ``hermes3.x.y`` name it cites imports, and every
``pip install ".[extra]"`` extra is declared in pyproject.toml.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import ROOT

README = ROOT / "README.md"
# The README first, then the guides it links: their commands run after the README's, in the same session.
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
FC = "data/sources/hermes_function_calling/hermes_fc_v1_card_examples.jsonl"  # 3 conversations, embedded
HUB_OFF = "downloads its datasets from the Hugging Face Hub, but HF_HUB_OFFLINE=1 is set"
TIMEOUT = 1800  # seconds per command: idle, each takes 5-60 s; the shared 2-core machine under load, 20x that


@dataclass(frozen=True)
class Run:
    """What runs for a README command: ``args`` after ``hermes3`` (``{base}``: the folder the README's
    ``hermes3 base`` wrote), the exit code expected, and a text the output must contain (for exit 2,
    the one error line)."""

    args: str
    why: str = "as written"
    rc: int = 0
    expect: str = ""
    capture: str = ""  # a regex with named groups, read from stdout into the context of later commands
    stdin: str = ""  # a checkout file fed to stdin (the README's `< file`); else stdin is empty


def clean_failure(args: str, names: str, why: str) -> Run:
    """A command that cannot work here: it must stop with exit 2 and one line naming ``names``."""
    return Run(args, why, rc=2, expect=names)


SMOKE_SFT = "max_steps=2 max_length=512 warmup_steps=0"  # a few steps of 512-token rows
QUESTIONS = "configs/chat/questions.txt"
CHAT_TOKENS = "--max-new-tokens 8"
CHAT_WHY = "8 new tokens a reply, stdin: the README's scripted session (a user turn, a /tool line, a user turn)"
ONE_NOTEBOOK = Run("reproduce --scale smoke --only 09", "one smoke notebook (see below)", expect="09_table3_plan")

# The reviewed table: README command (whitespace-normalised, comment dropped) -> what runs instead.
COMMANDS: dict[str, tuple[Run, ...]] = {
    # --- Command line: the demo chain at smoke scale. `name=demo` keeps the README's output folder
    # (runs/data/demo), which the later commands read by default (configs/sft/tiny.yaml, --data).
    "hermes3 data build --config configs/data/demo.yaml": (
        Run("data build --config configs/data/smoke.yaml name=demo", "smoke-size mixture (seconds) under the demo's name",
            expect="written to "),),
    "hermes3 base --size tiny-m": (
        Run("base --size tiny-m steps=3 seq_len=32 batch_size=2", "3 pre-training steps instead of 300",
            capture=r"model in (?P<base>\S+)"),),
    "hermes3 sft --config configs/sft/tiny.yaml": (
        # `model: tiny-m` would pre-train the 300-step base: point at the smoke one the line above built
        Run(f"sft --config configs/sft/tiny.yaml model={{base}} {SMOKE_SFT}", "2 steps on the smoke base",
            expect="SFT run in "),),
    "hermes3 lr-search --config configs/sft/tiny.yaml --lrs 3e-4,1e-3,3e-3 epochs=1": (
        # one LR: choosing among several is what the Recipe snippet above runs (smoke: two LRs)
        Run(f"lr-search --config configs/sft/tiny.yaml --lrs 1e-3 epochs=1 model={{base}} {SMOKE_SFT} --limit 1",
            "one LR of 2 steps, one held-out item per task", expect="selected lr: 0.001"),),
    "hermes3 dpo --config configs/dpo/tiny.yaml": (
        Run("dpo --config configs/dpo/tiny.yaml max_steps=2 pairs_per_step=2 max_length=512 eval_steps=2",
            "2 steps of 2 pairs", expect="merged model in "),),
    "hermes3 eval runs/sft/tiny/final --suite offline": (
        Run("eval runs/sft/tiny/final --suite offline --limit 1 --max-gen-toks 8 --batch-size 4",
            "one item per task, 8 generated tokens"),),
    "hermes3 plan --config configs/sft/llama3.1-405b.yaml cluster.nodes=7": (
        Run("plan --config configs/sft/llama3.1-405b.yaml cluster.nodes=7", "as written; the README says 7 is the minimum",
            expect="minimum nodes for this layout (with CPU offload): 7"),),
    "hermes3 validate|render FILE": (
        Run(f"validate {FC}", "FILE: an embedded Hermes function-calling file"),
        Run(f"render {FC}", "FILE: an embedded Hermes function-calling file",
            expect="<|im_start|>system\nYou are a function calling AI model."),),
    "hermes3 pack-stats FILE [--tokenizer NousResearch/Hermes-3-Llama-3.1-8B]": (
        Run(f"pack-stats {FC}", "FILE: embedded; default tokenizer: the data build's", expect='"samples": 3'),
        clean_failure(f"pack-stats {FC} --tokenizer NousResearch/Hermes-3-Llama-3.1-8B",
                      "NousResearch/Hermes-3-Llama-3.1-8B", "a Hub tokenizer: the Hub is off here"),),
    # The demo scale rewrites the committed notebooks/ and figures/ (make demo, 43 min) and the full smoke
    # run is tests/test_notebooks.py's: one smoke notebook (Table 3, no training) shows the runner and --only.
    "hermes3 reproduce --scale demo [--only 05,06]": (ONE_NOTEBOOK,),
    # --- inline mentions
    "hermes3 reproduce --scale demo": (ONE_NOTEBOOK,),
    "hermes3 reproduce --scale smoke": (ONE_NOTEBOOK,),
    "hermes3 data build": (
        Run("data build --help", "'point it at your sources': the demo build itself runs above at smoke size",
            expect="--config"),),
    "hermes3 plan --config configs/sft/llama3.1-8b.yaml": (
        Run("plan --config configs/sft/llama3.1-8b.yaml", "as written; the README quotes its steps per epoch",
            expect="steps per epoch      1,034"),),
    "accelerate launch --config_file configs/accelerate/fsdp.yaml -m hermes3.cli sft --config configs/sft/llama3.1-8b.yaml": (
        clean_failure("sft --config configs/sft/llama3.1-8b.yaml", "NousResearch/Hermes-3-Dataset",
                      "FSDP on 8 GPUs from Hub data and Llama 3.1 8B: the Hub is off here"),),
    "hermes3 eval CKPT --suite gpt4all": (
        clean_failure("eval runs/sft/tiny/final --suite gpt4all", f"suite 'gpt4all' {HUB_OFF}",
                      "CKPT: the SFT run above; GPT4All's datasets come from the Hub"),),
    "torchrun --nproc_per_node 8 -m hermes3.cli dpo --config configs/dpo/llama3.1-8b.yaml": (
        clean_failure("dpo --config configs/dpo/llama3.1-8b.yaml", "runs/sft/llama3.1-8b/final does not exist",
                      "needs the full-scale Llama 3.1 8B SFT run and 8 GPUs; run in one process here"),),
    "accelerate launch --config_file configs/accelerate/fsdp_lora.yaml -m hermes3.cli dpo --config "
    "configs/dpo/llama3.1-70b.yaml": (
        clean_failure("dpo --config configs/dpo/llama3.1-70b.yaml", "runs/sft/llama3.1-70b/final does not exist",
                      "needs the full-scale Llama 3.1 70B SFT run and FSDP on GPUs; run in one process here"),),
    "hermes3 fp8 MERGED OUT": (
        Run("fp8 runs/dpo/tiny/merged runs/fp8/out", "MERGED: the DPO run above; OUT: a new folder",
            expect="Linear weights"),),
    "hermes3 eval OUT --suite table5 --backend vllm --apply-chat-template --add-bos-token": (
        clean_failure("eval runs/fp8/tiny --suite table5 --backend vllm --apply-chat-template --add-bos-token",
                      f"suite 'table5' {HUB_OFF}", "OUT: the FP8 folder above; Table 5's datasets come from the Hub, "
                      "and vLLM serves on a GPU"),),
    # --- After `make demo`: chat on the folders the chain above built (runs/demo/* is `make demo`'s), fed the
    # README's scripted session; the W&B report offline (W&B is disabled here, so no run folders exist).
    "hermes3 chat runs/demo/fp8 --tools configs/chat/tools.json": (
        Run(f"chat runs/fp8/tiny --tools configs/chat/tools.json {CHAT_TOKENS}", CHAT_WHY, expect="assistant: ",
            stdin=QUESTIONS),),
    "hermes3 chat runs/demo/fp8 --tools configs/chat/tools.json --max-new-tokens 64 < configs/chat/questions.txt": (
        Run(f"chat runs/fp8/tiny --tools configs/chat/tools.json {CHAT_TOKENS}", CHAT_WHY, expect="assistant: ",
            stdin=QUESTIONS),),
    "hermes3 chat runs/demo/sft/final --system \"You are Hermes, a helpful assistant.\" --max-new-tokens 64 "
    "< configs/chat/questions.txt": (
        Run(f"chat runs/sft/tiny/final --system \"You are Hermes, a helpful assistant.\" {CHAT_TOKENS}",
            "the chain's SFT model for runs/demo/sft/final; " + CHAT_WHY, expect="assistant: ", stdin=QUESTIONS),),
    "hermes3 chat MODEL": (
        Run(f"chat runs/sft/tiny/final {CHAT_TOKENS}", "MODEL: the chain's SFT model; " + CHAT_WHY,
            expect="assistant: ", stdin=QUESTIONS),),
    "hermes3 chat --url http://127.0.0.1:8000/v1 --tools configs/chat/tools.json": (
        clean_failure("chat --url http://127.0.0.1:8000/v1 --tools configs/chat/tools.json",
                      "http://127.0.0.1:8000/v1: cannot list the served models",
                      "no vLLM server runs here (make serve-check starts one, heavy)"),),
    "hermes3 wandb-report --check runs/wandb/wandb --offline": (
        clean_failure("wandb-report --check runs/wandb/wandb --offline", "wandb/wandb: no W&B runs",
                      "W&B is disabled in this session, so no offline runs exist to check; "
                      "tests/test_wandb_report.py checks real ones"),),
    "hermes3 wandb-report --entity YOUR_ENTITY": (
        clean_failure("wandb-report --entity YOUR_ENTITY", "W&B YOUR_ENTITY/hermes3: cannot save the report",
                      "publishing needs W&B's server and a login; the same command offline is `hermes3 wandb-report`"),),
}


# ------------------------------------------------------------------------------ parsing README.md

@dataclass(frozen=True)
class Item:
    kind: str  # "command" | "python"
    text: str  # the normalised command, or the snippet's source
    line: int  # 1-based line in its file
    source: str = "README.md"  # the file, relative to the checkout

    @property
    def id(self) -> str:
        head = self.text if self.kind == "command" else "python"
        where = "" if self.source == "README.md" else Path(self.source).stem + "-"
        return f"{where}L{self.line}-" + re.sub(r"[^A-Za-z0-9.=-]+", "_", head)[:60].strip("_")

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


FENCE = re.compile(r"^```(\w*)\s*$")
SHELL = {"bash", "sh", "shell", "console"}
INLINE_CMD = re.compile(r"^hermes3 [a-z][a-z0-9-]*(\s|$)")


def _command(text: str, inline: bool) -> str | None:
    """The normalised command of a code span or shell line, or None when it is not one."""
    text = " ".join(text.split())
    text = re.sub(r"(^|\s)#.*$", "", text).strip()  # a shell comment: ` # ...` to the end
    if text.startswith("$ "):
        text = text[2:]
    if (INLINE_CMD.match(text) if inline else text.startswith("hermes3 ")) or " -m hermes3.cli " in f" {text} ":
        return text
    return None


def parse(markdown: str) -> tuple[list[Item], str]:
    """README items in order, and the README's prose (fenced blocks blanked, line numbers kept)."""
    items, prose, block, lang, start = [], [], None, "", 0
    lines = markdown.splitlines()
    for n, line in enumerate(lines, 1):
        m = FENCE.match(line.strip())
        if block is None and m:
            block, lang, start = [], m.group(1).lower(), n
            prose.append("")
            continue
        if block is not None:
            prose.append("")
            if line.strip() != "```":
                block.append((n, line))
                continue
            if lang == "python":
                items.append(Item("python", "\n".join(t for _, t in block) + "\n", start))
            elif lang in SHELL:
                joined, first = "", None
                for k, t in block:
                    first = first or k
                    if t.rstrip().endswith("\\"):
                        joined += t.rstrip()[:-1] + " "
                        continue
                    cmd = _command(joined + t, inline=False)
                    if cmd:
                        items.append(Item("command", cmd, first))
                    joined, first = "", None
            block = None
            continue
        prose.append(line)
    text = "\n".join(prose)
    for m in re.finditer(r"(?<!`)`([^`]+)`(?!`)", text):
        cmd = _command(m.group(1), inline=True)
        if cmd:
            items.append(Item("command", cmd, text.count("\n", 0, m.start()) + 1))
    return sorted(items, key=lambda i: i.line), text


ITEMS = [Item(i.kind, i.text, i.line, str(doc.relative_to(ROOT))) for doc in DOCS
         for i in parse(doc.read_text(encoding="utf-8"))[0]]
ALL_TEXT = "\n".join(doc.read_text(encoding="utf-8") for doc in DOCS)
PLACEHOLDER = re.compile(r"\b[A-Z]{2,}\b(?!=)|[|\[\]<>]|\.\.\.")  # FILE, CKPT, a|b, [--opt], <x>, ...


def test_parse_rule():
    """The extraction rule on a made-up README: shell lines with comments, continuations and a prompt,
    inline spans (one wrapped), output quoted in spans, a launcher, and non-shell blocks."""
    md = ("Run `hermes3 plan --config\nx.yaml` or `hermes3 reproduce: stage 05 failed` (output) and\n"
          "`accelerate launch -m hermes3.cli sft` or `python -m hermes3` or `hermes3`.\n"
          "```bash\n$ hermes3 a --b 1   # comment\nhermes3 c \\\n  --d\nmake demo\nhermes3 v|r F\n```\n"
          "```\nhermes3 not-a-shell-block\n```\n```python\nprint(1)\n```\n")
    items, prose = parse(md)
    assert [(i.kind, i.text, i.line) for i in items] == [
        ("command", "hermes3 plan --config x.yaml", 1),
        ("command", "accelerate launch -m hermes3.cli sft", 3),
        ("command", "hermes3 a --b 1", 5), ("command", "hermes3 c --d", 6), ("command", "hermes3 v|r F", 9),
        ("python", "print(1)\n", 14)]
    assert "not-a-shell-block" not in prose and "make demo" not in prose
    assert [bool(PLACEHOLDER.search(t)) for t in ("hermes3 fp8 MERGED OUT", "hermes3 a|b", "hermes3 x [--y]",
                                                  "hermes3 x NODES=6", "hermes3 sft --config c.yaml lr=1e-3")] == [
        True, True, True, False, False]


def test_readme_has_the_chain():
    """The parser finds the README's commands (an empty list would make the tests below vacuous)."""
    cmds = [i.text for i in ITEMS if i.kind == "command"]
    assert {"hermes3 data build --config configs/data/demo.yaml", "hermes3 fp8 runs/dpo/tiny/merged runs/fp8/tiny",
            "hermes3 eval runs/sft/tiny/final --suite offline"} <= set(cmds)
    assert sum(i.kind == "python" for i in ITEMS) >= 2


def test_table_entries_are_in_the_readme():
    """A table entry whose command left the README is stale: the table stays the README's."""
    cmds = {i.text for i in ITEMS if i.kind == "command"}
    stale = sorted(set(COMMANDS) - cmds)
    assert not stale, ("tests/test_readme.py COMMANDS has entries that README.md no longer contains; remove or "
                       "update them:\n  " + "\n  ".join(stale))


# ------------------------------------------------------------------------------ running them

@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """One runs root for the whole README, so later commands find what earlier ones built."""
    tmp = tmp_path_factory.mktemp("readme")
    env = dict(os.environ)
    for var, sub in (("HERMES3_RUNS", "runs"), ("HERMES3_FIGURES", "figures"), ("WANDB_DIR", "wandb"),
                     ("NLTK_DATA", "nltk_data"), ("HERMES3_EVAL_CACHE", "eval-cache")):
        env[var] = str(tmp / sub)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="disabled",
               TQDM_DISABLE="1", PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    env.pop("WANDB_API_KEY", None)  # `hermes3 wandb-report` publishes when a key is set: here it stays offline
    return {"env": env, "tmp": tmp, "ctx": {}, "done": {}}


def _console_script() -> list[str]:
    """The installed `hermes3` entry point beside this interpreter (PYTHONPATH makes it this checkout's)."""
    script = Path(sys.executable).with_name("hermes3")
    return [str(script)] if script.exists() else [sys.executable, "-m", "hermes3.cli.main"]


def _tail(text: str, n: int = 15) -> str:
    return "\n".join("    " + ln for ln in text.strip().splitlines()[-n:])


def _how_to_add(item: Item) -> str:
    return (f"If it cannot run as written on a 2-core machine without internet (demo-scale work, a Hub model or "
            f"dataset, a GPU, vLLM, a cluster, a placeholder), add it to COMMANDS in tests/test_readme.py with "
            f"what runs instead and why, e.g.\n"
            f"    {item.text!r}: (Run(\"<args at smoke scale>\", \"<why>\"),),\n"
            f"    {item.text!r}: (clean_failure(\"<args>\", \"<what the error line must name>\", \"<why>\"),),\n"
            f"    {item.text!r}: (Run(\"<subcommand> --help\", \"<why>\", expect=\"<an option>\"),),")


def _run(run: Run, item: Item, session) -> None:
    __tracebackhide__ = True  # the failure message says it all
    try:
        args = run.args.format(**session["ctx"])
    except KeyError as e:
        pytest.fail(f"{item.where}: `{item.text}` needs {e} from an earlier README command, which failed")
    if (args, run.stdin) in session["done"]:  # the same substitution for two README mentions: run once
        rc, out, err = session["done"][args, run.stdin]
    else:
        try:
            with open(ROOT / run.stdin, "rb") if run.stdin else open(os.devnull, "rb") as stdin:
                p = subprocess.run(_console_script() + shlex.split(args), cwd=ROOT, env=session["env"],
                                   capture_output=True, text=True, timeout=TIMEOUT, stdin=stdin)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{item.where}: `hermes3 {args}` ran over {TIMEOUT} s ({run.why}).\n{_how_to_add(item)}")
        rc, out, err = p.returncode, p.stdout, p.stderr
        session["done"][args, run.stdin] = rc, out, err
    where = f"{item.where}: `{item.text}`" + (f" (ran `hermes3 {args}`: {run.why})" if run.why != "as written" else "")
    if rc != run.rc:
        hint = "" if item.text in COMMANDS else "\n" + _how_to_add(item)
        pytest.fail(f"{where} exited {rc}, expected {run.rc}:\n{_tail(out + err)}\n"
                    f"Fix the README or the code so that it runs as documented.{hint}")
    if run.rc == 0:
        assert run.expect in out, f"{where}: {run.expect!r} not in its output:\n{_tail(out)}"
        if run.capture:
            m = re.search(run.capture, out)
            assert m, f"{where}: {run.capture!r} not in its output:\n{_tail(out)}"
            session["ctx"].update(m.groupdict())
    else:  # a clean refusal: one line naming the culprit, no traceback
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert "Traceback" not in out + err, f"{where}: a traceback instead of one line:\n{_tail(err)}"
        assert lines and lines[-1].startswith("hermes3 ") and run.expect in lines[-1], (
            f"{where}: the error line should start 'hermes3 ' and name {run.expect!r}:\n{_tail(err)}")


@pytest.mark.parametrize("item", ITEMS, ids=[i.id for i in ITEMS])
def test_readme_item_runs(item, session):
    if item.kind == "python":
        f = session["tmp"] / f"snippet_{Path(item.source).stem}_L{item.line}.py"
        f.write_text(item.text)
        p = subprocess.run([sys.executable, str(f)], cwd=ROOT, env=session["env"], capture_output=True, text=True,
                           timeout=TIMEOUT, stdin=subprocess.DEVNULL)
        assert p.returncode == 0, (f"{item.where}: the ```python block exited {p.returncode}:\n"
                                   f"{_tail(p.stdout + p.stderr)}\nFix the README or the code so that it runs as shown.")
        return
    runs = COMMANDS.get(item.text)
    if runs is None:
        if PLACEHOLDER.search(item.text):
            pytest.fail(f"{item.where}: `{item.text}` has a placeholder (FILE, a|b, [optional], <x>, ...) "
                        f"and no entry in COMMANDS.\n{_how_to_add(item)}")
        runs = (Run(item.text.split(" -m hermes3.cli ", 1)[-1].removeprefix("hermes3 ")),)
    for run in runs:
        _run(run, item, session)


# ------------------------------------------------------------------------------ cheap checks of what it names

def test_make_targets_exist():
    """Every `make X` in the README is a Makefile target (parsed, not run)."""
    targets = set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", (ROOT / "Makefile").read_text(), flags=re.M))
    # in code only (a span, or a line of a shell block), not prose that happens to say "make"
    named = set(re.findall(r"(?:^|`)make ([a-z][a-z0-9_-]*)", ALL_TEXT, flags=re.M))
    assert {"demo", "test", "lab"} <= named
    assert sorted(named - targets) == [], f"README.md names make targets the Makefile lacks: {sorted(named - targets)}"


PATH_RE = re.compile(r"(?<![\w./-])((?:configs|scripts|data|tests|hermes3|benchmarks|notebooks|requirements|figures|docs)/"
                     r"[\w.-]+(?:/[\w.-]+)*|environment\.yml|pyproject\.toml|Makefile)(?![\w*{<])")


def test_named_files_exist():
    """Every checkout path the README names (configs, scripts, tests, figures, ...) exists: docs that call a
    deleted script are the drift open-instruct's users hit."""
    named = {m.group(1).rstrip(".") for m in PATH_RE.finditer(ALL_TEXT)}
    assert {"configs/sft/tiny.yaml", "scripts/launch_multinode.sh", "figures/table1_mixture.png"} <= named
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert missing == [], f"README.md names files that do not exist: {missing}"


def test_named_library_objects_exist():
    """Every `hermes3.module.name` the README cites imports (`hermes3.recipe.selection.epoch_table`, ...)."""
    names = set(re.findall(r"(?<![/\w])hermes3(?:\.[A-Za-z_]\w*)+", ALL_TEXT))  # not a file name such as configs/data/hermes3.yaml
    assert "hermes3.recipe.stages.Recipe" in names
    missing = []
    for name in sorted(names):
        parts = name.split(".")
        for k in range(len(parts), 0, -1):  # the longest importable module, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:k]))
            except ModuleNotFoundError:
                continue
            try:
                for attr in parts[k:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                missing.append(name)
            break
        else:
            missing.append(name)
    assert missing == [], f"README.md cites names that do not exist: {missing}"


def test_pip_extras_exist():
    """`pip install -e ".[train,eval,fp8,gpu]"`: each extra is declared in pyproject.toml."""
    section = (ROOT / "pyproject.toml").read_text().split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    extras = set(re.findall(r"^([\w-]+)\s*=", section, flags=re.M))  # (tomllib is 3.11+; we support 3.10)
    named = {e.strip() for group in re.findall(r'\.\[([\w,\s-]+)\]', ALL_TEXT)
             for e in group.split(",")}
    assert {"gpu", "train"} <= named and sorted(named - extras) == []
