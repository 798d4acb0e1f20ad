"""Model folders are untrusted input (issue 36, item 2).

Families of hostile folders, each through every entry point that loads a model folder
(``chat``, ``eval``, ``fp8``, ``sft``/``dpo`` ``model:``, ``load_model``, the held-out scorer,
``scripts/serve_check.py``): each is refused in exactly one line naming the folder and the
file, nothing from the folder is unpickled (a payload that would create a marker folder does
not create it), and nothing is left behind (the test folder's tree is unchanged).
"""

from __future__ import annotations

import json
import os
import pickle
import shlex
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, make_tiny_model, tree, unblocking
from hermes3.cli.main import main

SFT = f"sft --config {ROOT}/configs/sft/tiny.yaml output_dir={{d}}/sft_out data={{d}}/good.jsonl model={{m}}"
DPO = f"dpo --config {ROOT}/configs/dpo/tiny.yaml output_dir={{d}}/dpo_out data={{d}}/good.jsonl model={{m}}"
COMMANDS = {"chat": "chat {m}", "eval": "eval {m} --data {d}", "fp8": "fp8 {m} {d}/fp8_out", "sft": SFT, "dpo": DPO}
GOOD = {"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]}
WEIGHTS = "model.safetensors"


class Payload:
    """Unpickling this creates ``marker``: the proof that something unpickled the weights."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def hint(m: str) -> str:
    return (f"Convert them to safetensors where you trust the folder, e.g. python -c \"from transformers import "
            f"AutoModelForCausalLM as M; M.from_pretrained('{m}').save_pretrained('{m}-safetensors')\", "
            "and pass the new folder")


def _header(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def _write(path: Path, header: dict | bytes, data: bytes, length: int | None = None) -> None:
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h) if length is None else length) + h + data)


def pickle_folders(d: Path, good: Path) -> dict[str, str]:
    """Pickle-only weights, in the names torch.save and friends use; -> folder: files named."""
    rows = {"bin": ["pytorch_model.bin"], "sharded-bin": ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"],
            "pt": ["model.pt"], "pth": ["consolidated.00.pth"], "pkl": ["weights.pkl"], "ckpt": ["last.ckpt"],
            "many": ["a.bin", "b.bin", "c.bin", "d.bin"]}
    for name, files in rows.items():
        f = d / f"pickle-{name}"
        shutil.copytree(good, f, ignore=shutil.ignore_patterns(WEIGHTS))
        for w in files:
            (f / w).write_bytes(pickle.dumps(Payload(d.parent / f"PWNED-{name}")))
    return {f"pickle-{n}": ", ".join(sorted(fs)[:3]) + (", ..." if len(fs) > 3 else "") for n, fs in rows.items()}


def header_folders(d: Path, good: Path) -> dict[str, str]:
    """Copies of the good folder whose model.safetensors header lies; -> folder: the problem named."""
    header, data = _header(good / WEIGHTS)
    meta = header.pop("__metadata__")
    names = sorted(header, key=lambda k: header[k]["data_offsets"][0])
    first, second, last = names[0], names[1], names[-1]
    norms = sorted(k for k in header if k.endswith("input_layernorm.weight"))
    size = len(data)

    def variant(edit):
        h = json.loads(json.dumps(header))
        edit(h)
        return {"__metadata__": meta, **h}

    def shift(h, k, by):
        h[k]["data_offsets"] = [o + by for o in h[k]["data_offsets"]]

    def share(h):
        h[norms[1]]["data_offsets"] = list(h[norms[0]]["data_offsets"])

    a0, a1 = header[first]["data_offsets"]
    rows = {  # name: (header, data, header length or None, problem)
        "past-end": (variant(lambda h: shift(h, last, 64)), data, None,
                     f"tensor '{last}' ends at byte {header[last]['data_offsets'][1] + 64:,} of the data, which holds {size:,} bytes"),
        "overlap": (variant(share), data, None, f"tensors '{norms[0]}' and '{norms[1]}' overlap"),
        "gap": (variant(lambda h: h.pop(second)), data, None,
                f"a gap of {header[second]['data_offsets'][1] - header[second]['data_offsets'][0]:,} bytes before tensor"),
        "shape-lies": (variant(lambda h: h[first].update(shape=[h[first]["shape"][0] + 1, *h[first]["shape"][1:]])), data, None,
                       f"tensor '{first}': F32{[header[first]['shape'][0] + 1, *header[first]['shape'][1:]]} is"),
        "dtype-lies": (variant(lambda h: h[first].update(dtype="BF16")), data, None,
                       f"tensor '{first}': BF16{header[first]['shape']} is {(a1 - a0) // 2:,} bytes, its offsets span {a1 - a0:,}"),
        "unknown-dtype": (variant(lambda h: h[first].update(dtype="F7")), data, None, f"tensor '{first}': unknown dtype 'F7'"),
        "negative-offset": (variant(lambda h: h[first].update(data_offsets=[-4, a1])), data, None,
                            f"tensor '{first}': data_offsets [-4, {a1}] is not [start, end] with 0 <= start <= end"),
        "length-past-file": (variant(lambda h: None), data, 10**12, "the header length is 1,000,000,000,000 bytes, the file"),
        "not-json": (b'{"model.embed_tokens.weight": {"dtype": "F32", ', b"", None, "not valid JSON"),
        "json-list": (b"[1, 2, 3]", b"", None, "expected a JSON object, got a list"),
        "deep-json": (b"[" * 100_000 + b"]" * 100_000, b"", None, "JSON nested deeper than 100 levels (MAX_DEPTH)"),
        "tail-unused": (variant(lambda h: None), data + b"\0" * 16, None,
                        f"the tensors end at byte {size:,} of the data, the file holds {size + 16:,}"),
    }
    out = {}
    for name, (h, payload, length, problem) in rows.items():
        f = d / f"header-{name}"
        shutil.copytree(good, f, ignore=shutil.ignore_patterns(WEIGHTS))
        _write(f / WEIGHTS, h, payload, length)
        out[f"header-{name}"] = f"{WEIGHTS} is damaged (safetensors header: {problem}"
    f = d / "header-pickle-named-safetensors"  # a pickle renamed: its first 8 bytes read as a huge length
    shutil.copytree(good, f, ignore=shutil.ignore_patterns(WEIGHTS))
    (f / WEIGHTS).write_bytes(pickle.dumps(Payload(d.parent / "PWNED-renamed")) * 50)
    out[f.name] = f"{WEIGHTS} is damaged (safetensors header: the header length is "
    f = d / "header-empty"
    shutil.copytree(good, f, ignore=shutil.ignore_patterns(WEIGHTS))
    (f / WEIGHTS).write_bytes(b"")
    out[f.name] = f"{WEIGHTS} is damaged (safetensors header: the file is 0 bytes, shorter than the 8-byte header length)"
    return out


def special_folders(d: Path, good: Path) -> dict[str, str]:
    """Weights that are not regular files, and shard indexes that point outside the folder."""
    out = {}
    for name, make, kind in [("fifo", lambda p: os.mkfifo(p), "a FIFO"), ("dir", lambda p: p.mkdir(), "a folder"),
                             ("dev-zero", lambda p: p.symlink_to("/dev/zero"), "a device")]:
        f = d / f"weights-{name}"
        shutil.copytree(good, f, ignore=shutil.ignore_patterns(WEIGHTS))
        make(f / WEIGHTS)
        out[f.name] = f"{WEIGHTS}: not a regular file ({kind})"
    header, _ = _header(good / WEIGHTS)
    keys = [k for k in header if k != "__metadata__"]
    shutil.copy(good / WEIGHTS, d / "outside.safetensors")
    for name, shard, problem in [("parent", "../outside.safetensors", "names shard '../outside.safetensors'; expected"),
                                 ("absolute", str(d / "outside.safetensors"), f"names shard '{d}/outside.safetensors'; expected"),
                                 ("pickle-shard", "pytorch_model.bin", "names shard 'pytorch_model.bin'; expected"),
                                 ("missing", "model-00002-of-00002.safetensors", "names shard model-00002-of-00002.safetensors, "
                                                                                 "which is missing")]:
        f = d / f"index-{name}"
        shutil.copytree(good, f)
        (f / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": dict.fromkeys(keys, shard)}))
        out[f.name] = f"model.safetensors.index.json {problem}"
    f = d / "index-deep"
    shutil.copytree(good, f)
    (f / "model.safetensors.index.json").write_text("[" * 100_000 + "]" * 100_000)
    out[f.name] = "model.safetensors.index.json: JSON nested deeper than 100 levels (MAX_DEPTH); refused before parsing"
    f = d / "config-deep"
    shutil.copytree(good, f)
    (f / "config.json").write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    out[f.name] = "config.json is not valid JSON (JSON nested deeper than 100 levels (MAX_DEPTH); refused before parsing)"
    f = d / "config-remote-code"  # code shipped in the folder, which trust_remote_code=True would import
    shutil.copytree(good, f)
    cfg = json.loads((f / "config.json").read_text())
    (f / "config.json").write_text(json.dumps({**cfg, "model_type": "evil", "architectures": ["EvilForCausalLM"], "auto_map": {
        "AutoConfig": "configuration_evil.EvilConfig", "AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}}))
    for module in ("configuration_evil.py", "modeling_evil.py"):
        (f / module).write_text(f"import os\nos.mkdir({str(d.parent / 'PWNED-remote-code')!r})\n")
    out[f.name] = " holds a 'evil' model, not a causal language model transformers can load (e.g. llama, mistral, qwen2)"
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_tok):
    root = tmp_path_factory.mktemp("hostile")
    d = root / "d"
    d.mkdir()
    tiny_tok.save_pretrained(root / "tok")
    good = make_tiny_model(root / "good", root / "tok", hidden_size=32)
    (d / "good.jsonl").write_text(json.dumps(GOOD) + "\n")
    cases = {**pickle_folders(d, good), **header_folders(d, good), **special_folders(d, good)}
    return d, cases


def expected(d: Path, name: str, culprit: str) -> str:
    m = f"{d}/{name}"
    if name.startswith("pickle-"):
        return (f"model folder {m}: pickle weights only ({culprit}), which can run code when loaded; refused, nothing "
                f"was read. {hint(m)}")
    return f"model folder {m}{'' if culprit.startswith(' ') else ': '}{culprit}"


def assert_untouched(d: Path, before: set[str]) -> None:
    assert tree(d) == before, tree(d) ^ before
    assert not list(d.parent.glob("PWNED-*")), "a pickle payload ran"


FAMILIES = {"pickle": ["bin", "sharded-bin", "pt", "pth", "pkl", "ckpt", "many"],
            "header": ["past-end", "overlap", "gap", "shape-lies", "dtype-lies", "unknown-dtype", "negative-offset",
                       "length-past-file", "not-json", "json-list", "deep-json", "tail-unused", "pickle-named-safetensors",
                       "empty"],
            "weights": ["fifo", "dir", "dev-zero"], "index": ["parent", "absolute", "pickle-shard", "missing", "deep"],
            "config": ["deep", "remote-code"]}
NAMES = [f"{fam}-{v}" for fam, vs in FAMILIES.items() for v in vs]


@pytest.mark.parametrize("cmd", sorted(COMMANDS))
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_command_refuses_in_one_line(built, family, cmd, capsys):
    d, cases = built
    names = [n for n in NAMES if n.startswith(family + "-")]
    for name in names:
        before = tree(d)
        with unblocking(d) as guard:  # today's code blocked forever opening a FIFO named model.safetensors
            code = main(shlex.split(COMMANDS[cmd].format(d=d, m=d / name)))
        err = capsys.readouterr().err
        assert not guard.fired, f"{name}: blocked on a FIFO"
        want = expected(d, name, cases[name])
        assert code == 2 and "Traceback" not in err, (name, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"hermes3 {cmd}: {want}"), (name, lines, want)
        if family in ("pickle", "config", "weights") or name.endswith("deep"):
            assert lines[0] == f"hermes3 {cmd}: {want}", name
        assert_untouched(d, before)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_library_entry_points_refuse(built, family):
    """``load_model`` (which SFT and DPO load through), the held-out scorer, FP8's emulation."""
    from hermes3.convert.fp8 import emulate
    from hermes3.eval.heldout import heldout_scores
    from hermes3.train.modeling import ModelFolderError, load_model

    d, cases = built
    for name in (n for n in NAMES if n.startswith(family + "-")):
        want = expected(d, name, cases[name])
        before = tree(d)
        for call in (lambda m: load_model(m), lambda m: heldout_scores(m, d, ["math"], split="test"), lambda m: emulate(m, m)):
            with pytest.raises(ModelFolderError) as e, unblocking(d) as guard:
                call(str(d / name))
            assert not guard.fired, f"{name}: blocked on a FIFO"
            assert str(e.value).startswith(want) and "\n" not in str(e.value), (name, str(e.value))
        assert_untouched(d, before)


@pytest.mark.parametrize("name", ["pickle-bin", "header-past-end", "index-parent"])
def test_serve_check_refuses_before_starting_anything(built, name, tmp_path):
    d, cases = built
    (tmp_path / "data" / "eval" / "test").mkdir(parents=True)
    (tmp_path / "data" / "eval" / "test" / "tool_use.jsonl").write_text(json.dumps(GOOD) + "\n")
    before = tree(d)
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "serve_check.py"), str(d / name), "--data",
                        str(tmp_path / "data"), "--vllm-python", sys.executable], capture_output=True, text=True,
                       timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines() == [f"serve_check: {expected(d, name, cases[name])}"] or \
        r.stderr.strip().splitlines()[-1].startswith(f"serve_check: {expected(d, name, cases[name])}"), r.stderr
    assert r.stdout == ""
    assert_untouched(d, before)


def test_the_good_folder_and_hub_ids_pass(built, tmp_path):
    """What the checks accept: the folder save_pretrained writes, with a Trainer's pickles beside
    its safetensors (never loaded: ``use_safetensors``), a valid shard index, and Hub ids."""
    from hermes3.train.modeling import check_model_folder, load_model

    d, _ = built
    good = d.parent / "good"
    check_model_folder(good)
    check_model_folder("NousResearch/Hermes-3-Llama-3.1-8B")
    f = tmp_path / "ckpt"
    shutil.copytree(good, f)
    for name in ("training_args.bin", "optimizer.pt", "rng_state.pth"):
        (f / name).write_bytes(pickle.dumps(Payload(tmp_path / "PWNED")))
    shard = f / "model-00001-of-00001.safetensors"
    (f / WEIGHTS).rename(shard)
    header, _ = _header(shard)
    (f / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": dict.fromkeys(
        [k for k in header if k != "__metadata__"], shard.name)}))
    check_model_folder(f)
    assert load_model(f).config.use_cache is False
    assert not (tmp_path / "PWNED").exists()


def test_trust_remote_code_is_never_turned_on():
    """Nothing in the package or scripts turns trust_remote_code on (off is transformers' and
    vLLM's default); the folder with its own modeling code above is refused without importing it."""
    hits = [f"{p}:{i}" for base in ("hermes3", "scripts") for p in sorted((ROOT / base).rglob("*.py"))
            for i, line in enumerate(p.read_text().splitlines(), 1)
            if "trust_remote_code=True" in line.replace(" ", "") or '"--trust-remote-code"' in line]
    assert hits == []
