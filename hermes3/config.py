"""Dataclass configs from YAML presets plus ``key=value`` overrides.

One dataclass per stage; every field carries ``metadata={"help": ...}``. A YAML file
holds a subset of the fields (nested dataclasses as nested mappings); overrides use dotted
keys (``filters.min_tokens=32``). Unknown keys and values of the wrong type are one clear
error naming the key, before any work starts.

>>> from dataclasses import dataclass, field
>>> @dataclass
... class C:
...     lr: float = field(default=1e-5, metadata={"help": "peak learning rate"})
>>> load_config(C, None, ["lr=7e-6"]).lr
7e-06
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A bad configuration key or value."""


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
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return _build(typ, value, key + ".")
    if origin in (dict, list) or typ in (dict, list):
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, origin or typ):
            raise ConfigError(f"{key}: expected a {(origin or typ).__name__}, got {value!r}")
        return value
    if typ is bool:
        if isinstance(value, str):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ConfigError(f"{key}: expected true/false, got {value!r}")
            return value.lower() in ("true", "1", "yes")
        return bool(value)
    if typ in (int, float, str):
        try:
            if typ is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return typ(float(value)) if typ is int and isinstance(value, str) and "e" in value.lower() else typ(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected {typ.__name__}, got {value!r}") from None
    return value


def _build(cls, data: dict, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown key '{prefix}{unknown[0]}' for {cls.__name__}; known: {', '.join(sorted(names))}")
    return cls(**{k: _coerce(v, hints[k], prefix + k) for k, v in data.items()})


def _merge(cls, base: dict, new: dict) -> None:
    """Deep-merge ``new`` into ``base`` for nested dataclass sections; any other value
    (dict-valued fields included) is replaced whole."""
    hints = typing.get_type_hints(cls)
    for k, v in new.items():
        typ = hints.get(k)
        if dataclasses.is_dataclass(typ) and isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(typ, base[k], v)
        else:
            base[k] = v


def _set(d: dict, dotted: str, value: str) -> None:
    *parents, last = dotted.split(".")
    for p in parents:
        d = d.setdefault(p, {})
        if not isinstance(d, dict):
            raise ConfigError(f"{dotted}: '{p}' is not a section")
    d[last] = yaml.safe_load(value) if value != "" else ""


def load_config(cls, path: str | Path | None = None, overrides: list[str] | None = None):
    """Instance of dataclass ``cls`` from a YAML file (optional) and ``key=value`` overrides."""
    # Start from the defaults so a nested override (filters.min_tokens=8) keeps the other
    # nested defaults instead of replacing the whole section.
    data: dict = dataclasses.asdict(cls())
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of config keys")
        _merge(cls, data, loaded)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value")
        k, v = item.split("=", 1)
        patch: dict = {}
        _set(patch, k.strip(), v.strip())
        _merge(cls, data, patch)
    return _build(cls, data)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def describe(cls) -> str:
    """Each field with its default and help text (for ``--help`` and docs)."""
    lines = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        lines.append(f"  {f.name} = {default!r}: {f.metadata.get('help', '')}")
    return "\n".join(lines)
