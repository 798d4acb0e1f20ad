"""hermes3 plan: parameter counts on the meta device and the FSDP memory arithmetic."""

import time

import pytest
import yaml

from hermes3.train.cluster import ClusterConfig
from hermes3.train.plan import BYTES_STATE, min_nodes, plan


def _arch(size):
    return yaml.safe_load(open(f"configs/sft/llama3.1-{size}.yaml"))["model_config"]


@pytest.mark.parametrize("size,params_b", [("8b", 8.03), ("70b", 70.55), ("405b", 405.85)])
def test_parameter_counts_match_llama31(size, params_b):
    t0 = time.perf_counter()
    p = plan(_arch(size), ClusterConfig(nodes=16, cpu_offload=True))
    assert round(p.parameters / 1e9, 2) == params_b and time.perf_counter() - t0 < 30


def test_memory_arithmetic_by_hand():
    arch = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000, "tie_word_embeddings": False}
    c = ClusterConfig(nodes=1, gpus_per_node=4, gpu_memory_gb=80, dataset_tokens=1e6, packing_efficiency=0.5)
    p = plan(arch, c, seq_len=256)
    n = 1000 * 64 * 2 + 2 * (64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 128 + 2 * 64) + 64  # embed+head, layers, norm
    assert p.parameters == n
    layer = 64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 128 + 2 * 64
    assert p.memory["sharded state"] == pytest.approx(n * BYTES_STATE / 4 / 1e9)
    assert p.memory["gathered layers"] == pytest.approx(2 * layer * 2 / 1e9)
    assert p.memory["activations"] == pytest.approx((2 * 256 * 64 * 2 + 34 * 256 * 64) / 1e9)
    assert p.memory["logits"] == pytest.approx((256 * 1000 * 6 + 1000 * 64 * 2) / 1e9)  # + the head's bf16 gradient
    assert p.tokens_per_step == 4 * 256 and p.steps_per_epoch == 1954  # ceil(1e6 / (1024 * 0.5))


def test_report_layouts():
    # 8B on 48 GPUs, batch 48: ~1,030 steps per epoch at 96% packing (report §4.1)
    p8 = plan(_arch("8b"), ClusterConfig(nodes=6))
    assert p8.fits and p8.steps_per_epoch == 1034
    # 405B: the report's minimum of 7 HGX nodes with CPU offload (1 TB host RAM per node)
    assert min_nodes(_arch("405b"), ClusterConfig(cpu_offload=True, cpu_ram_per_node_gb=1024)) == 7
    bad = plan(_arch("405b"), ClusterConfig(nodes=6, cpu_offload=True))
    assert not bad.fits and "host RAM" in bad.reason


def test_dpo_memory_arithmetic_by_hand():
    """LoRA DPO: bf16 base, 12 bytes per LoRA parameter (RMSProp), no reference copy."""
    from hermes3.train.plan import plan_dpo

    arch = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000, "tie_word_embeddings": False}
    n = 1000 * 64 * 2 + 2 * (64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 128 + 2 * 64) + 64
    layer = 64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 128 + 2 * 64
    # r x (in + out) per linear: q, o (64->64), k, v (64->32), gate, up (64->128), down (128->64); 2 layers
    lora = 2 * 8 * (2 * 128 + 2 * 96 + 3 * 192)
    s = 2 * 3 * 256  # 3 pairs per device, 2 sequences of at most 256 tokens each
    ddp = plan_dpo(arch, ClusterConfig(nodes=1, gpus_per_node=4, fsdp=False), max_length=256, pairs_per_device=3,
                   pairs_per_step=12, lora_r=8)
    assert ddp.memory["frozen base (bf16)"] == pytest.approx(n * 2 / 1e9)
    assert ddp.memory["LoRA + optimizer"] == pytest.approx(lora * 12 / 1e9)
    assert ddp.memory["reference model"] == ddp.memory["gathered layers"] == 0
    assert ddp.memory["activations"] == pytest.approx((2 * s * 64 * 2 + 34 * s * 64) / 1e9)
    assert ddp.memory["logits"] == pytest.approx(s * 1000 * 10 / 1e9)
    assert ddp.tokens_per_step == 12 * 2 * 256 and ddp.steps_per_epoch == -1
    fsdp = plan_dpo(arch, ClusterConfig(nodes=1, gpus_per_node=4), max_length=256, pairs_per_device=3, lora_r=8,
                    optimizer="adamw_torch")
    assert fsdp.memory["frozen base (bf16)"] == pytest.approx(n * 2 / 4 / 1e9)
    assert fsdp.memory["LoRA + optimizer"] == pytest.approx(lora * 16 / 4 / 1e9)
    assert fsdp.memory["gathered layers"] == pytest.approx(2 * layer * 2 / 1e9)


def test_dpo_recipes_fit_one_node_and_405b_does_not():
    from hermes3.train.plan import load_recipe, plan_dpo, recipe_plan

    for size, base_gb in (("8b", 16.06), ("70b", 141.1 / 8)):
        cfg = load_recipe(f"configs/dpo/llama3.1-{size}.yaml")
        planner, kw = recipe_plan(cfg)
        p = planner(cfg.model_config, cfg.cluster, **kw)
        assert planner is plan_dpo and p.fits and p.gpus == 8, p.reason
        assert p.memory["frozen base (bf16)"] == pytest.approx(base_gb, abs=0.05) and p.memory["reference model"] == 0
    # why there is no 405B DPO recipe: no node count fits at 8192-token sequences, even with CPU offload
    big = [plan_dpo(_arch("405b"), ClusterConfig(nodes=n, cpu_offload=True)) for n in (1, 8)]
    # (the activations of one 8,192-token pair alone take 77 GB)
    assert not any(p.fits for p in big) and all(p.memory["total"] > 90 and p.memory["activations"] > 76 for p in big)
