"""hermes3.train.modeling.check_model_folder: broken model folders fail in one line before loading."""

import json
import subprocess
import sys

import pytest

from hermes3.train.modeling import ModelFolderError, check_model_folder, tiny_llama


@pytest.fixture()
def good(tmp_path):
    tiny_llama(64, hidden_size=32, num_layers=1, num_heads=2).save_pretrained(tmp_path / "good")
    return tmp_path / "good"


def test_good_folder_and_hub_ids_pass(good):
    check_model_folder(good)
    check_model_folder("NousResearch/Hermes-3-Llama-3.1-8B")  # a Hub id: left to from_pretrained


@pytest.mark.parametrize("breakage, message", [
    ("missing", "does not exist"),
    ("no_config", "has no config.json"),
    ("bad_json", "config.json is not valid JSON"),
    ("t5", "holds a 't5' model, not a causal language model"),
    ("classifier", "holds LlamaForSequenceClassification, not a causal language model"),
    ("no_weights", "has no weights"),
    ("truncated", r"model.safetensors is damaged \(safetensors header: tensor .* ends at byte"),
])
def test_broken_folders_are_one_line(good, tmp_path, breakage, message):
    f = good
    if breakage == "missing":
        f = tmp_path / "nope"
    elif breakage == "no_config":
        (good / "config.json").unlink()
    elif breakage == "bad_json":
        (good / "config.json").write_text("{")
    elif breakage == "t5":
        (good / "config.json").write_text(json.dumps({"model_type": "t5"}))
    elif breakage == "classifier":
        cfg = json.loads((good / "config.json").read_text())
        (good / "config.json").write_text(json.dumps({**cfg, "architectures": ["LlamaForSequenceClassification"]}))
    elif breakage == "no_weights":
        (good / "model.safetensors").unlink()
    else:  # a copy that stopped halfway
        w = good / "model.safetensors"
        w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    with pytest.raises(ModelFolderError, match=message) as e:
        check_model_folder(f)
    assert "\n" not in str(e.value)


def test_cli_sft_on_a_damaged_model_is_one_line(good, smoke_data):
    w = good / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    r = subprocess.run([sys.executable, "-m", "hermes3.cli", "sft", f"model={good}", f"data={smoke_data}",
                        "wandb_mode=disabled", "max_steps=1", f"output_dir={good.parent / 'out'}"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("hermes3 sft: model folder") and "Traceback" not in r.stderr


@pytest.mark.parametrize("flag,expected", [("true", True), ("TRUE", True), (True, True), ("false", False),
                                           ("False", False), (False, False)])
def test_use_bf16_explicit(flag, expected):
    from hermes3.train.modeling import use_bf16

    assert use_bf16(flag) is expected


@pytest.mark.parametrize("cuda,gpu_bf16,cpu_bf16,expected", [
    (False, False, True, True), (False, False, False, False), (True, True, False, True), (True, False, True, False)])
def test_use_bf16_auto(monkeypatch, cuda, gpu_bf16, cpu_bf16, expected):
    """auto: yes on a bf16 GPU (Ampere and later), no on an older GPU; on a CPU yes only where it
    computes bf16 natively (an AVX2-only CPU emulates it, an order of magnitude slower than fp32)."""
    import torch

    from hermes3.train import modeling

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: gpu_bf16)
    monkeypatch.setattr(modeling, "cpu_has_native_bf16", lambda: cpu_bf16)
    assert modeling.use_bf16("auto") is expected and modeling.use_bf16("AUTO") is expected


def test_cpu_has_native_bf16_is_onednns_answer(monkeypatch):
    """The CPU test is oneDNN's own, and a torch without that probe means fp32, not a crash."""
    import torch

    from hermes3.train.modeling import cpu_has_native_bf16

    assert cpu_has_native_bf16() is bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())

    def gone():
        raise AttributeError("no such op")

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", gone)
    assert cpu_has_native_bf16() is False


def test_use_bf16_bad_flag_is_one_line():
    from hermes3.train.modeling import use_bf16

    with pytest.raises(ValueError, match=r"^bf16 must be auto, true or false, got 'yes'$"):
        use_bf16("yes")
