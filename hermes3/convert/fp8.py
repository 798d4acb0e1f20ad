"""FP8 conversion for vLLM: llm-compressor's ``FP8_DYNAMIC`` scheme, streamed tensor by tensor.

The report evaluated its 405B models in FP8 made with llm-compressor: round-to-nearest
weights with a per-output-channel scale, and per-token activation scales computed at run
time (no calibration data). The 405B card: >800 GB in FP16, ~430 GB in FP8.

We write the same compressed-tensors "float-quantized" checkpoint that llm-compressor's
``oneshot(scheme="FP8_DYNAMIC", ignore=["lm_head"])`` writes, with the same arithmetic as
compressed-tensors (in the weight's own dtype):

    scale = absmax(row) / 448            (a zero row gets the dtype's eps, no 0/0)
    q     = clamp(w / scale, -448, 448).to(float8_e4m3fn)     round to nearest, saturating

but reading and writing one tensor at a time (``ShardReader``, ``write_safetensors``), so peak
memory is about the largest tensor (an 8B: 1.4 GB) whatever the model or shard size
(llm-compressor loads the whole model: 21.6 GB for the 8B). The quantization config
comes from the ``compressed-tensors`` library (``preset_name_to_scheme("FP8_DYNAMIC")``).
Every Linear except those ignored is quantized; embeddings and norms keep their dtype.

>>> import torch
>>> q, s = quantize_weight(torch.tensor([[1.0, -2.0], [0.0, 0.0]]))
>>> bool(s[0, 0] == torch.tensor(2.0) / 448), q.dtype, q[0].float().tolist()
(True, torch.float8_e4m3fn, [224.0, -448.0])
"""

from __future__ import annotations

import json
import math
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from hermes3.core.errors import Hermes3Error
from hermes3.core.modelfolder import DTYPE_BYTES, safetensors_header
from hermes3.core.paths import resolve_if_local
from hermes3.train.modeling import check_model_folder, load_model

FP8 = torch.float8_e4m3fn
FP8_MAX = float(torch.finfo(FP8).max)  # 448
# What FP8 compute is here: transformers loads a compressed-tensors checkpoint by dequantizing its
# weights, and CPUs have no FP8 matmul kernels, so quality is measured and speed is not.
FP8_COMPUTE = ("emulated: weights stored in FP8, dequantized for every matmul (no FP8 kernels on CPU); "
               "speed not measured")
COPY_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
              "chat_template.jinja", "tokenizer.model")


class FP8Error(Hermes3Error):
    """A model that cannot be converted, named in one line."""


def _eps(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps


def quantize_weight(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(fp8 weight, scale [out, 1])`` per output channel, in ``w``'s dtype (as
    compressed-tensors computes it, so results are bit-identical)."""
    w = w.detach()
    absmax = torch.maximum(w.amin(dim=1, keepdim=True).abs(), w.amax(dim=1, keepdim=True).abs())
    absmax = torch.maximum(absmax, torch.zeros_like(absmax))
    scale = absmax / (torch.tensor(2 * FP8_MAX, dtype=w.dtype) / 2)
    scale = torch.where(scale == 0, torch.tensor(_eps(scale.dtype), dtype=scale.dtype), scale)
    q = torch.clamp(w / scale, -FP8_MAX, FP8_MAX).to(FP8)
    return q, scale


def dequantize_weight(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.to(scale.dtype) * scale


def fake_quantize_tokens(x: torch.Tensor) -> torch.Tensor:
    """Per-token dynamic FP8 quantize-dequantize of activations (what vLLM does in FP8 and
    what compressed-tensors emulates on CPU)."""
    lo = torch.minimum(x.amin(dim=-1, keepdim=True), torch.zeros(1, dtype=x.dtype))
    hi = torch.maximum(x.amax(dim=-1, keepdim=True), torch.zeros(1, dtype=x.dtype))
    scale = torch.maximum(lo.abs(), hi.abs()) / (torch.tensor(2 * FP8_MAX, dtype=x.dtype) / 2)
    scale = torch.where(scale == 0, torch.tensor(_eps(scale.dtype), dtype=scale.dtype), scale)
    q = torch.clamp(x / scale, -FP8_MAX, FP8_MAX).to(FP8)
    return q.to(x.dtype) * scale


def stored_dtypes(model_dir: str | Path) -> str:
    """The dtypes a checkpoint's tensors are stored in, from its safetensors headers, with each one's
    share of the bytes, largest first: e.g. ``float32 (100%)``. Read from the files because a dtype
    assumed from the recipe can be wrong (an fp32 model was once labelled bf16)."""
    nbytes: dict[str, int] = {}
    for shard in _shards(Path(model_dir)):
        for info in safetensors_header(shard)[0].values():
            start, end = info["data_offsets"]
            nbytes[info["dtype"]] = nbytes.get(info["dtype"], 0) + end - start
    total = sum(nbytes.values()) or 1
    return ", ".join(f"{str(TORCH_DTYPES[d]).removeprefix('torch.')} ({n / total:.0%})"
                     for d, n in sorted(nbytes.items(), key=lambda kv: -kv[1]))


def _shards(model_dir: Path) -> list[Path]:
    idx = model_dir / "model.safetensors.index.json"
    if idx.exists():
        return [model_dir / f for f in sorted(set(json.loads(idx.read_text())["weight_map"].values()))]
    single = model_dir / "model.safetensors"
    if single.exists():
        return [single]
    raise FP8Error(f"{model_dir}: no model.safetensors or model.safetensors.index.json (safetensors checkpoints only)")


def linear_names(config: dict) -> tuple[set[str], set[str]]:
    """Names of Linear modules, and of other modules holding 2-D weights, from the
    architecture on the meta device (no weights loaded)."""
    from hermes3.train.plan import meta_model

    model = meta_model({k: v for k, v in config.items() if k not in ("architectures", "transformers_version",
                                                                    "torch_dtype", "dtype")})
    lin, other = set(), set()
    for name, mod in model.named_modules():
        w = getattr(mod, "weight", None)
        if isinstance(mod, torch.nn.Linear):
            lin.add(name)
        elif isinstance(w, torch.nn.Parameter) and w.ndim == 2:
            other.add(name)
    return lin, other


@dataclass
class ConversionReport:
    bytes_in: int
    bytes_out: int
    by_class: dict
    quantized: int
    kept: int

    @property
    def ratio(self) -> float:
        return self.bytes_out / self.bytes_in


def convert(model_dir: str | Path, out_dir: str | Path, ignore: tuple[str, ...] = ("lm_head",),
            overwrite: bool = False) -> ConversionReport:
    """Convert a Hugging Face safetensors checkpoint to FP8_DYNAMIC, one tensor at a time.

    The output is written into ``<out_dir>.tmp`` and renamed only when complete, so a
    crash never leaves a half-written folder that looks like a model.
    """
    from hermes3.core.outputs import atomic_dir
    from hermes3.train.modeling import ModelFolderError

    # `runs/...` under $HERMES3_RUNS, the rule every config path follows (hermes3.core.paths)
    src, out = Path(resolve_if_local(str(model_dir))), Path(resolve_if_local(str(out_dir)))
    try:  # missing folder or config, not a causal LM, damaged shards: here, not halfway through
        check_model_folder(src)
    except ModelFolderError as e:
        raise FP8Error(str(e)) from None
    if out.exists() and not overwrite:
        raise FP8Error(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    config = json.loads((src / "config.json").read_text())
    if "quantization_config" in config:
        raise FP8Error(f"{src} is already quantized ({config['quantization_config'].get('quant_method', '?')})")
    linears, others = linear_names(config)
    if not linears:
        raise FP8Error(f"{src}: no torch.nn.Linear layers found (unsupported layer types)")
    # Written into <out>.tmp, renamed only when complete; on an error (NaN weights, a full disk)
    # the temporary folder is removed, so a failed conversion leaves nothing behind.
    with atomic_dir(out, "FP8 output folder") as tmp:
        weight_map, bytes_in, bytes_out = {}, 0, 0
        by_class = {"linear (fp8)": [0, 0], "ignored linear": [0, 0], "embedding/other": [0, 0]}
        n_q = n_kept = 0
        for shard in _shards(src):
            with ShardReader(shard) as f:
                specs, sources = [], []  # output (name, dtype, shape); what produces it
                for name in f.keys():
                    dtype, shape = f.header[name]["dtype"], list(f.header[name]["shape"])
                    if dtype == "F8_E4M3" or name.endswith("weight_scale"):
                        raise FP8Error(f"{src}: tensor {name} is already FP8-quantized")
                    module = name.rsplit(".", 1)[0]
                    size = math.prod(shape) * DTYPE_BYTES[dtype]
                    bytes_in += size
                    if name.endswith(".weight") and module in linears and not any(
                            module == i or module.endswith("." + i) for i in ignore):
                        if len(shape) != 2:
                            raise FP8Error(f"{src}: Linear weight {name} has shape {tuple(shape)}, expected 2-D")
                        specs += [(name, "F8_E4M3", shape), (module + ".weight_scale", dtype, [shape[0], 1])]
                        sources += [(name, "fp8"), (name, "scale")]
                        by_class["linear (fp8)"][0] += size
                        by_class["linear (fp8)"][1] += shape[0] * shape[1] + shape[0] * DTYPE_BYTES[dtype]
                        n_q += 1
                    else:
                        specs.append((name, dtype, shape))
                        sources.append((name, "keep"))
                        key = "ignored linear" if module in linears else "embedding/other"
                        by_class[key][0] += size
                        by_class[key][1] += size
                        n_kept += 1

                bytes_out += write_safetensors(tmp / shard.name, specs, _produce(f, sources, src), {"format": "pt"})
            weight_map.update({name: shard.name for name, _, _ in specs})
        (tmp / "model.safetensors.index.json").write_text(json.dumps(
            {"metadata": {"total_size": bytes_out}, "weight_map": dict(sorted(weight_map.items()))}, indent=2))
        if len(_shards(src)) == 1 and (tmp / "model.safetensors").exists():
            (tmp / "model.safetensors.index.json").unlink()  # single file: no index, like save_pretrained
        config["quantization_config"] = quantization_config(list(ignore))
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        for name in COPY_FILES:
            if (src / name).exists():
                shutil.copy(src / name, tmp / name)
    return ConversionReport(bytes_in, bytes_out, {k: tuple(v) for k, v in by_class.items()}, n_q, n_kept)


TORCH_DTYPES = {"F8_E4M3": torch.float8_e4m3fn, "BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32,
                "F64": torch.float64, "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
                "U8": torch.uint8, "BOOL": torch.bool, "F8_E5M2": torch.float8_e5m2, "U16": torch.uint16,
                "U32": torch.uint32, "U64": torch.uint64}  # every dtype safetensors_header accepts


class ShardReader:
    """Read a safetensors file one tensor at a time with plain reads, no memory map.

    ``safe_open`` maps the whole file, and every page a tensor read touches stays resident
    (and counted in RSS) until the file closes: a 2 GB shard costs 2 GB however we stream the
    output. Reading each tensor's bytes into its own buffer bounds memory by the largest
    tensor instead. The header is read and checked by ``hermes3.core.modelfolder.safetensors_header``.
    """

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.header, self.data_start = safetensors_header(self.path)  # checked against the file, in file order
        self.fh = open(self.path, "rb")
        return self

    def __exit__(self, *exc):
        self.fh.close()

    def keys(self):
        return list(self.header)

    def get_tensor(self, name: str) -> torch.Tensor:
        info = self.header[name]
        start, end = info["data_offsets"]
        dtype, shape = TORCH_DTYPES[info["dtype"]], info["shape"]
        if end == start:
            return torch.empty(shape, dtype=dtype)
        buf = torch.empty(end - start, dtype=torch.uint8)  # not zero-filled, unlike bytearray
        self.fh.seek(self.data_start + start)
        if self.fh.readinto(buf.numpy()) != end - start:
            raise FP8Error(f"{self.path}: tensor {name} is cut short (a truncated file)")
        return buf.view(dtype).reshape(shape)


def _produce(f, sources: list[tuple[str, str]], src: Path):
    """The output tensors of one shard, one at a time: ``fp8`` (quantized weight, then its
    ``scale``) or ``keep`` (as read), with the NaN/Inf checks."""
    scale = None
    for name, role in sources:
        if role == "scale":
            yield scale
            continue
        t = f.get_tensor(name)
        if role == "fp8":
            q, scale = quantize_weight(t)
            # NaN/Inf propagate into the row absmax, so checking the scales is a full check at
            # 1/2048 of the cost of isfinite(t) (which was half of the conversion time).
            if not torch.isfinite(scale).all():
                raise FP8Error(f"{src}: tensor {name} contains NaN or Inf")
            yield q
        else:  # amax/amin propagate NaN and +-Inf without abs(t)'s full-size copy
            if t.is_floating_point() and t.numel() and not (torch.isfinite(t.amax()) and torch.isfinite(t.amin())):
                raise FP8Error(f"{src}: tensor {name} contains NaN or Inf")
            yield t


def write_safetensors(path: Path, specs: list[tuple[str, str, list[int]]], tensors, metadata: dict) -> int:
    """Write a safetensors file one tensor at a time; returns the data bytes.

    Written by hand because ``safetensors.torch.save_file`` needs every tensor of the file in
    memory at once (a 5 GB shard of a 405B checkpoint, plus its input); the format itself only
    needs each tensor's dtype and shape up front: an 8-byte little-endian header length, a JSON
    header with byte offsets, then the raw bytes in that order. ``specs`` gives
    ``(name, dtype, shape)`` in file order, ``tensors`` yields the matching tensors.
    """
    header, offset = {"__metadata__": metadata}, 0
    for name, dtype, shape in specs:
        n = math.prod(shape) * DTYPE_BYTES[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned, as safetensors writes it
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        for (name, dtype, shape), t in zip(specs, tensors, strict=True):
            b = t.contiguous().reshape(-1).view(torch.uint8).numpy()
            if b.nbytes != header[name]["data_offsets"][1] - header[name]["data_offsets"][0]:
                raise FP8Error(f"{name}: produced {b.nbytes} bytes, the header says {dtype}{shape}")
            fh.write(memoryview(b))
    return offset


def quantization_config(ignore: list[str]) -> dict:
    """The ``quantization_config`` of an FP8_DYNAMIC checkpoint, built by compressed-tensors."""
    from compressed_tensors.quantization import QuantizationConfig, preset_name_to_scheme

    scheme = preset_name_to_scheme("FP8_DYNAMIC", ["Linear"])
    cfg = QuantizationConfig(config_groups={"group_0": scheme}, quant_method="compressed-tensors",
                             format="float-quantized", quantization_status="compressed", ignore=ignore)
    return cfg.model_dump(exclude_none=False)


def emulate(model_dir: str | Path, fp8_dir: str | Path):
    """Our own FP8 emulation: the unquantized model with every quantized Linear's weight replaced
    by its dequantized FP8 weight and its input fake-quantized per token."""
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    check_model_folder(model_dir)
    check_model_folder(fp8_dir)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), use_safetensors=True)
    fp8 = Path(fp8_dir)
    modules = dict(model.named_modules())
    for shard in _shards(fp8):
        with safe_open(shard, framework="pt") as f:
            names = set(f.keys())
            for name in names:
                if name.endswith(".weight_scale"):
                    mod = name[: -len(".weight_scale")]
                    w = dequantize_weight(f.get_tensor(mod + ".weight"), f.get_tensor(name))
                    lin = modules[mod]
                    lin.weight.data = w.to(lin.weight.dtype)
                    lin.register_forward_pre_hook(lambda m, args: (fake_quantize_tokens(args[0]),) + tuple(args[1:]))
    return model.eval()


@torch.no_grad()
def quality(model_dir: str | Path, fp8_dir: str | Path, texts: list[str], max_tokens: int = 512) -> dict:
    """Perplexity of the unquantized model and of its FP8 conversion, and the mean per-token
    KL(unquantized || fp8), on ``texts``; on the CPU, so FP8 is emulated (``FP8_COMPUTE``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_model_folder(model_dir)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    a = AutoModelForCausalLM.from_pretrained(str(model_dir), attn_implementation="sdpa", use_safetensors=True).eval()
    b = load_model(fp8_dir, attn_implementation="sdpa").eval()
    nll_a = nll_b = kl = n = 0.0
    for t in texts:
        ids = tok(t, add_special_tokens=False, return_tensors="pt").input_ids[:, :max_tokens]
        if ids.shape[1] < 2:
            continue
        la = torch.log_softmax(a(ids).logits[0, :-1].float(), -1)
        lb = torch.log_softmax(b(ids).logits[0, :-1].float(), -1)
        tgt = ids[0, 1:]
        nll_a -= la.gather(-1, tgt[:, None]).sum().item()
        nll_b -= lb.gather(-1, tgt[:, None]).sum().item()
        kl += (la.exp() * (la - lb)).sum().item()
        n += len(tgt)
    return {"ppl_unquantized": float(torch.tensor(nll_a / n).exp()), "ppl_fp8": float(torch.tensor(nll_b / n).exp()),
            "kl_per_token": kl / n, "tokens": int(n)}


def weight_bytes(model_config: dict, ignore: tuple[str, ...] = ("lm_head",)) -> dict:
    """bf16 vs FP8 weight bytes of an architecture (meta device: no weights needed)."""
    from hermes3.train.plan import meta_model

    model = meta_model(model_config)
    bf16 = fp8 = 0
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and not any(name == i or name.endswith("." + i) for i in ignore):
            bf16 += mod.weight.numel() * 2
            fp8 += mod.weight.numel() + mod.out_features * 2
    seen = {id(p) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and not any(
        n == i or n.endswith("." + i) for i in ignore) for p in m.parameters()}
    rest = sum(p.numel() * 2 for p in model.parameters() if id(p) not in seen)
    return {"bf16_GB": (bf16 + rest) / 1e9, "fp8_GB": (fp8 + rest) / 1e9, "ratio": (fp8 + rest) / (bf16 + rest)}
