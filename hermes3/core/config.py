"""Dataclass configs from YAML presets plus ``key=value`` overrides.

One dataclass per stage; every field carries ``metadata={"help": ...}``. A YAML file
holds a subset of the fields (nested dataclasses as nested mappings); overrides use dotted
keys (``filters.min_tokens=32``). Unknown keys, values of the wrong type and values outside
their declared choices or range are one clear error naming the file (or override) and the
key, before any work starts.

Fields declare their constraints in ``metadata``: ``choices`` (a tuple; strings compare
case-insensitively), and ``ge`` / ``gt`` / ``le`` / ``lt`` bounds. ``check(cfg)`` enforces them
on every field, nested sections included, then calls the dataclass's own ``validate()`` for
rules that tie fields together (e.g. ``max_length`` a multiple of 8).

>>> from dataclasses import dataclass, field
>>> @dataclass
... class C:
...     lr: float = field(default=1e-5, metadata={"help": "peak learning rate"})
>>> load_config(C, None, ["lr=7e-6"]).lr
7e-06
>>> @dataclass
... class S:
...     steps: int = field(default=10, metadata={"help": "optimizer steps", "ge": 1})
...     scheduler: str = field(default="cosine", metadata={"help": "decay", "choices": ("cosine", "linear")})
>>> load_config(S, None, ["steps=0"])
Traceback (most recent call last):
...
hermes3.core.config.ConfigError: override steps=0: steps must be >= 1, got 0
>>> load_config(S, None, ["scheduler=bogus"])
Traceback (most recent call last):
...
hermes3.core.config.ConfigError: override scheduler=bogus: scheduler must be one of 'cosine', 'linear', got 'bogus'
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import yaml

from hermes3.core.errors import Hermes3Error, InputFileError
from hermes3.core.limits import MAX_YAML_BYTES, load_yaml, read_regular


class ConfigError(Hermes3Error):
    """A bad configuration key or value; ``key`` is the dotted key when one is to blame."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def _coerce(value: Any, typ: Any, key: str) -> Any:
    origin = typing.get_origin(typ)
    if typ is Any or typ is None:
        return value
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _coerce(value, args[0], key)
    if dataclasses.is_dataclass(typ):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}", key)
        return _build(typ, value, key + ".")
    if origin in (dict, list) or typ in (dict, list):
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, origin or typ):
            raise ConfigError(f"{key}: expected a {(origin or typ).__name__}, got {value!r}", key)
        return value
    if typ is bool:
        if isinstance(value, str):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ConfigError(f"{key}: expected true/false, got {value!r}", key)
            return value.lower() in ("true", "1", "yes")
        if not isinstance(value, bool) and value not in (0, 1):  # 2 or 0.5 is a typo, not "true"
            raise ConfigError(f"{key}: expected true/false, got {value!r}", key)
        return bool(value)
    if typ in (int, float, str):
        # YAML gives None, bools and containers as such: str() or int() of them would pass
        # silently as "None", 1 or "[...]".
        if typ is str and isinstance(value, bool):
            return str(value).lower()  # `bf16=false` is YAML's boolean, meant as the word
        if value is None or isinstance(value, (bool, dict, list)):
            raise ConfigError(f"{key}: expected {typ.__name__}, got {value!r}", key)
        try:
            if typ is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return typ(float(value)) if typ is int and isinstance(value, str) and "e" in value.lower() else typ(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected {typ.__name__}, got {value!r}", key) from None
    return value


def _build(cls, data: dict, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown key '{prefix}{unknown[0]}' for {cls.__name__}; known: {', '.join(sorted(names))}",
                          prefix + unknown[0])
    return cls(**{k: _coerce(v, hints[k], prefix + k) for k, v in data.items()})


def _merge(cls, base: dict, new: dict, path: tuple = ()) -> None:
    """Deep-merge ``new`` into ``base`` for nested dataclass sections; any other value
    (dict-valued fields included) is replaced whole, except along ``path``: the keys of a dotted
    override, so ``shares.tool_use=75`` changes that one share and keeps the YAML's others."""
    hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
    for k, v in new.items():
        typ = hints.get(k)
        deeper = isinstance(v, dict) and isinstance(base.get(k), dict)
        if deeper and dataclasses.is_dataclass(typ):
            _merge(typ, base[k], v, path[1:])
        elif deeper and len(path) > 1:  # the dotted key goes below k (its patch is one key per level)
            _merge(None, base[k], v, path[1:])
        else:
            base[k] = v


def _set(d: dict, dotted: str, value: str) -> None:
    *parents, last = dotted.split(".")
    for p in parents:
        d = d.setdefault(p, {})
        if not isinstance(d, dict):
            raise ConfigError(f"{dotted}: '{p}' is not a section", dotted)
    try:
        d[last] = load_yaml(value, "value") if value != "" else ""
    except InputFileError as e:
        raise ConfigError(f"{dotted}: {e.problem}", dotted) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{dotted}: value {value!r} is not valid YAML ({getattr(e, 'problem', None) or e})", dotted) from None


_BOUNDS = {"ge": (">=", lambda v, b: v >= b), "gt": (">", lambda v, b: v > b),
           "le": ("<=", lambda v, b: v <= b), "lt": ("<", lambda v, b: v < b)}


def check(cfg, prefix: str = "") -> None:
    """Enforce the ``choices`` and bounds declared in field metadata, nested sections too, then
    ``cfg.validate()`` if the dataclass has one. Raises ``ConfigError`` naming the key."""
    for f in dataclasses.fields(cfg):
        key, v, meta = prefix + f.name, getattr(cfg, f.name), f.metadata
        if dataclasses.is_dataclass(v):
            check(v, key + ".")
            continue
        choices = meta.get("choices")
        if choices is not None:
            norm = lambda x: x.lower() if isinstance(x, str) else x  # noqa: E731
            if norm(v if not isinstance(v, bool) else str(v)) not in {norm(c) for c in choices}:
                raise ConfigError(f"{key} must be one of {', '.join(repr(c) for c in choices)}, got {v!r}", key)
        for name, (sym, ok) in _BOUNDS.items():
            # `not ok` rather than the opposite comparison, so NaN fails every bound
            if name in meta and v is not None and not ok(v, meta[name]):
                raise ConfigError(f"{key} must be {sym} {meta[name]:g}, got {v!r}", key)
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        try:
            validate()
        except ConfigError as e:
            if prefix and e.key:
                raise ConfigError(str(e), prefix + e.key) from None
            raise


def read_yaml(path: str | Path) -> dict:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file {p} does not exist")
    if p.is_dir():
        raise ConfigError(f"config file {p} is a folder, expected a YAML file")
    try:  # a FIFO or device is refused, not waited on; a huge file is refused unread
        text = read_regular(p, MAX_YAML_BYTES, " (expected a YAML config file)").decode("utf-8-sig")  # a BOM is fine
        loaded = load_yaml(text, str(p))  # deep nesting and alias bombs are refused before building
    except InputFileError as e:
        raise ConfigError(f"config file {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: byte {e.start} is not UTF-8 (save the file as UTF-8)") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
        raise ConfigError(f"{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{p}: expected a mapping of config keys, got a {type(loaded).__name__}")
    return loaded


def _flat(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        out.append(prefix + str(k))
        if isinstance(v, dict):
            out += _flat(v, prefix + str(k) + ".")
    return out


def load_config(cls, path: str | Path | None = None, overrides: list[str] | None = None):
    """Instance of dataclass ``cls`` from a YAML file (optional) and ``key=value`` overrides."""
    # Start from the defaults so a nested override (filters.min_tokens=8) keeps the other
    # nested defaults instead of replacing the whole section.
    data: dict = dataclasses.asdict(cls())
    origin: dict[str, str] = {}  # dotted key -> where its value came from, for error messages
    if path is not None:
        loaded = read_yaml(path)
        origin.update(dict.fromkeys(_flat(loaded), str(path)))
        _merge(cls, data, loaded)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value")
        k, v = item.split("=", 1)
        patch: dict = {}
        try:
            _set(patch, k.strip(), v.strip())
        except ConfigError as e:
            raise ConfigError(f"override {item}: {e}", e.key) from None
        origin.update(dict.fromkeys(_flat(patch), f"override {item}"))
        _merge(cls, data, patch, tuple(k.strip().split(".")))
    try:
        cfg = _build(cls, data)
        check(cfg)
    except ConfigError as e:
        where = origin.get(e.key or "")
        raise ConfigError(f"{where}: {e}" if where else str(e), e.key) from None
    return cfg


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def describe(cls) -> str:
    """Each field with its default and help text (for ``--help`` and docs)."""
    lines = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        lines.append(f"  {f.name} = {default!r}: {f.metadata.get('help', '')}")
    return "\n".join(lines)
