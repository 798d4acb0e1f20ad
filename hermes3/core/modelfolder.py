"""A model folder's weights are untrusted input: checked before anything loads them.

``check_weights(folder)`` is what ``hermes3.train.modeling.check_model_folder`` (the one
check every entry point that loads a model folder calls, and ``load_model`` itself) runs on
the weights:

* pickle-only weights (``pytorch_model.bin``, ``*.pt``, ``*.pkl``, ... and no
  ``*.safetensors``) are refused in one line naming the folder and how to convert it. A
  pickle can run code when loaded; nothing here opens one. (transformers would load them
  with ``torch.load(weights_only=True)``, which refuses most payloads, but with a traceback,
  and a restricted unpickler is still an unpickler.)
* every safetensors file's header is read and checked against the file by
  ``safetensors_header``, in Python, before any library maps the file: a header length
  beyond the file, JSON that is not valid, an unknown dtype, a shape whose byte size
  differs from its offsets, offsets past the end of the data, ranges that overlap or leave
  gaps. One line names the file.
* ``model.safetensors.index.json`` may only name shard files in the folder itself (not
  ``../x`` or ``/etc/x``), each present and checked as above.

>>> import tempfile, pathlib; d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "pytorch_model.bin").write_bytes(b"x")
>>> check_weights(d)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
hermes3.core.modelfolder.ModelFolderError: model folder ...: pickle weights only (pytorch_model.bin), which can run code when loaded; refused, nothing was read. Convert them to safetensors ...
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path

from hermes3.core.errors import Hermes3Error, InputFileError
from hermes3.core.limits import load_json, open_regular, read_json_file

# Suffixes of weights saved with pickle (torch.save, pickle.dump): never loaded from a folder.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
# Why 100 MB: the safetensors library's own limit on the header (a 405B checkpoint's largest
# shard header is under 100 KB); a larger length is a lie, refused before it is read.
MAX_HEADER_BYTES = 100_000_000
# Bytes per element of each safetensors dtype (the format's spec).
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
               "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8}


class ModelFolderError(Hermes3Error):
    """A model folder that cannot be trained, evaluated or converted, named in one line."""


def _convert_hint(folder: str) -> str:
    return ("Convert them to safetensors where you trust the folder, e.g. python -c \"from transformers import "
            f"AutoModelForCausalLM as M; M.from_pretrained('{folder}').save_pretrained('{folder}-safetensors')\", "
            "and pass the new folder")


def safetensors_header(path: str | Path, where: str | None = None) -> tuple[dict, int]:
    """``(header, data start)`` of a safetensors file, its tensors sorted by offset, after
    checking every claim the header makes against the file; ``ModelFolderError`` names it.

    >>> import tempfile, struct, json, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "w.safetensors"
    >>> h = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}).encode()
    >>> _ = f.write_bytes(struct.pack("<Q", len(h)) + h + bytes(8))
    >>> safetensors_header(f)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hermes3.core.modelfolder.ModelFolderError: ...w.safetensors is damaged (safetensors header: tensor 'w' ends at byte 16 of the data, which holds 8 bytes)
    """
    where = where or str(path)

    def bad(problem: str) -> ModelFolderError:
        return ModelFolderError(f"{where} is damaged (safetensors header: {problem})")

    try:
        f = open_regular(path)
    except InputFileError as e:
        raise ModelFolderError(f"{where}: {e.problem}") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        if size < 8:
            raise bad(f"the file is {size} bytes, shorter than the 8-byte header length")
        (n,) = struct.unpack("<Q", f.read(8))
        if n > size - 8:
            raise bad(f"the header length is {n:,} bytes, the file {size:,}")
        if n > MAX_HEADER_BYTES:
            raise bad(f"the header length is {n:,} bytes, over {MAX_HEADER_BYTES:,}")
        raw = f.read(n)
    try:
        header = load_json(raw.rstrip(b" "), where)  # deep nesting refused before parsing
    except InputFileError as e:
        raise bad(e.problem) from None
    except UnicodeDecodeError as e:
        raise bad(f"not UTF-8 (byte {e.start})") from None
    if not isinstance(header, dict):
        raise bad(f"expected a JSON object, got a {type(header).__name__}")
    meta = header.pop("__metadata__", None)
    if meta is not None and not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
        raise bad("__metadata__ must map strings to strings")
    data = size - 8 - n
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise bad(f"tensor {name!r}: expected exactly dtype, shape and data_offsets")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in DTYPE_BYTES:
            raise bad(f"tensor {name!r}: unknown dtype {dtype!r}")
        if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
            raise bad(f"tensor {name!r}: shape {shape!r} is not a list of sizes")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            raise bad(f"tensor {name!r}: data_offsets {offsets!r} is not [start, end] with 0 <= start <= end")
        if offsets[1] > data:
            raise bad(f"tensor {name!r} ends at byte {offsets[1]:,} of the data, which holds {data:,} bytes")
        nbytes = math.prod(shape) * DTYPE_BYTES[dtype]
        if nbytes != offsets[1] - offsets[0]:
            raise bad(f"tensor {name!r}: {dtype}{shape} is {nbytes:,} bytes, its offsets span {offsets[1] - offsets[0]:,}")
        spans.append((offsets[0], offsets[1], name))
    spans.sort()
    end, last = 0, None
    for start, stop, name in spans:
        if start < end:
            raise bad(f"tensors {last!r} and {name!r} overlap (bytes {start:,}..{end:,})")
        if start > end:
            raise bad(f"a gap of {start - end:,} bytes before tensor {name!r}")
        end, last = stop, name
    if end != data:
        raise bad(f"the tensors end at byte {end:,} of the data, the file holds {data:,}")
    return {name: header[name] for _, _, name in spans}, 8 + n


def _shard_names(index: Path, s: str) -> set[str]:
    try:
        weight_map = read_json_file(index).get("weight_map")
    except (InputFileError, AttributeError) as e:
        raise ModelFolderError(f"model folder {s}: {index.name}: {getattr(e, 'problem', 'expected a JSON object')}") from None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ModelFolderError(f"model folder {s}: {index.name}: expected a weight_map of tensor names to shard files")
    for shard in set(weight_map.values()):
        if Path(shard).name != shard or shard in (".", "..") or not shard.endswith(".safetensors"):
            raise ModelFolderError(f"model folder {s}: {index.name} names shard {shard!r}; expected a "
                                   ".safetensors file name in the folder itself")
        if not (index.parent / shard).exists():
            raise ModelFolderError(f"model folder {s}: {index.name} names shard {shard}, which is missing")
    return set(weight_map.values())


def check_weights(folder: str | Path, name: str | None = None) -> None:
    """Refuse, in one line naming the folder (``name``, default the path), pickle-only
    weights, a damaged safetensors header and an index naming shards outside the folder.
    Reads headers only; loads and unpickles nothing."""
    p, s = Path(folder), name or str(folder)
    weights = sorted(p.glob("*.safetensors"))
    if not weights:
        pickles = sorted(f.name for f in p.iterdir() if f.name.endswith(PICKLE_SUFFIXES))
        if pickles:
            shown = ", ".join(pickles[:3]) + (", ..." if len(pickles) > 3 else "")
            raise ModelFolderError(f"model folder {s}: pickle weights only ({shown}), which can run code when loaded; "
                                   f"refused, nothing was read. {_convert_hint(s)}")
        raise ModelFolderError(f"model folder {s} has no weights (*.safetensors)")
    index = p / "model.safetensors.index.json"
    shards = _shard_names(index, s) if index.exists() else set()
    for f in sorted(set(weights) | {p / n for n in shards}):
        safetensors_header(f, f"model folder {s}: {f.name}")
