"""Limits on input files, each refused by a check of its own, in one line naming the file.

A file handed to hermes3 (a data file, a config, a ``--tools`` file, a model folder's
``config.json``) may be hostile or simply broken in ways the parsers do not survive:

* nesting deeper than Python's recursion limit ends ``json.loads`` (and PyYAML's composer)
  in a ``RecursionError`` traceback: ``check_json_depth`` and ``load_yaml`` count the depth
  first, without recursion, and refuse past ``MAX_DEPTH``;
* one line of gigabytes is read whole into memory before any check could look at it:
  ``read_lines`` reads at most ``MAX_LINE_BYTES`` of a line;
* a whole-file document (``.json``, YAML) is parsed in memory: ``MAX_JSON_FILE_BYTES`` and
  ``MAX_YAML_BYTES`` bound it before it is read;
* a FIFO blocks ``open()`` until some writer comes, a device (``/dev/zero``) never ends:
  ``open_regular`` opens without blocking and refuses anything but a regular file;
* a YAML "billion laughs" (aliases of aliases) loads as a few shared objects but expands to
  billions of values in whatever walks or copies it: ``load_yaml`` refuses a document whose
  values, aliases expanded, number more than ``MAX_YAML_VALUES``.

>>> check_json_depth(b'{"a": [[1], "]]]]"]}', "x.json")
>>> check_json_depth(b"[" * 100 + b"]" * 100, "x.json")
>>> check_json_depth(b"[" * 101 + b"]" * 101, "x.json")
Traceback (most recent call last):
...
hermes3.core.errors.InputFileError: x.json: JSON nested deeper than 100 levels (MAX_DEPTH); refused before parsing
>>> load_yaml("a: &x [1, 2]\\nb: *x\\n", "c.yaml")
{'a': [1, 2], 'b': [1, 2]}
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from hermes3.core.errors import InputFileError

# Why 100: the deepest record we read (a tool schema's nested properties inside a message
# inside a conversation) nests about 15 levels; Python's default recursion limit is 1000, and
# json.loads plus our own recursive walks (``_drop_none``, ``dataclasses.asdict``) must stay
# well inside it whatever the caller's stack depth.
MAX_DEPTH = 100
# Why 16 MiB: a Llama 3.1 context (131,072 tokens) is about 0.5 MB of text, so a real record
# with long tool schemas stays far below; above, a line is a broken or hostile file, and
# reading it whole would cost its size in memory (and several times that as Python objects).
MAX_LINE_BYTES = 16 * 2**20
# Why 1 GiB: a .json file is parsed whole (about 5-10x its size as Python objects); above
# this, the same records belong in a .jsonl file, read one line at a time.
MAX_JSON_FILE_BYTES = 2**30
# Why 1 MiB: our largest config is a few KB; a YAML file is parsed whole, and PyYAML is slow.
MAX_YAML_BYTES = 2**20
# Why 100,000: a config holds at most a few hundred values; a billion-laughs document
# (9 levels of 10 aliases) expands to 10^9, so any bound far above real configs refuses it.
MAX_YAML_VALUES = 100_000

_ESCAPE = re.compile(rb"\\.", re.S)
_STRING = re.compile(rb'"[^"]*"')  # after _ESCAPE removed every \x pair, a string holds no backslash
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_SQUARE = bytes.maketrans(b"{}", b"[]")


def open_regular(path: str | Path, what: str = ""):
    """``path`` opened for binary reading, refused in one line unless it is a regular file
    (a symlink to one is fine). Opened with ``O_NONBLOCK``, so a FIFO is refused rather than
    waited on, and checked with ``fstat`` on the open descriptor, not a racy ``stat`` first."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputFileError(path, f"does not exist{what}") from None
    except IsADirectoryError:
        raise InputFileError(path, f"is a folder, not a regular file{what}") from None
    except OSError as e:  # a socket cannot be opened at all (ENXIO): say what it is
        try:
            mode = os.stat(path).st_mode
        except OSError:
            mode = stat.S_IFREG
        if stat.S_ISREG(mode):
            raise InputFileError(path, f"cannot open it ({e.strerror or e}){what}") from None
        raise InputFileError(path, f"not a regular file ({_kind(mode)}){what}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise InputFileError(path, f"not a regular file ({_kind(mode)}){what}")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _kind(mode: int) -> str:
    return ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a file")


def read_regular(path: str | Path, limit: int, what: str = "") -> bytes:
    """The bytes of a regular file (``open_regular``) of at most ``limit`` bytes."""
    with open_regular(path, what) as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise InputFileError(path, f"is {size:,} bytes, over the {limit:,}-byte limit for a file read whole{what}")
        return f.read(limit + 1)


def read_lines(f, path: str | Path):
    """``(line number, bytes)`` of an open binary file, each line at most ``MAX_LINE_BYTES``:
    a longer one is refused after reading that much, not read whole first."""
    n = 0
    while raw := f.readline(MAX_LINE_BYTES + 1):
        n += 1
        if len(raw) > MAX_LINE_BYTES:
            raise InputFileError(path, f"line longer than {MAX_LINE_BYTES:,} bytes (MAX_LINE_BYTES); "
                                       "refused before parsing", n)
        yield n, raw


def check_json_depth(raw: bytes, path: str | Path, line: int | None = None) -> None:
    """Refuse JSON text nested deeper than ``MAX_DEPTH``, without recursion and in C loops:
    escape pairs out, strings out, every bracket but ``[]`` out (``{}`` become ``[]``), then
    each ``replace`` pass removes the innermost level; what is left after ``MAX_DEPTH`` passes
    nests deeper. A real record empties in a few passes."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return  # cannot nest deeper than it has brackets
    s = _STRING.sub(b"", _ESCAPE.sub(b"", raw)).translate(_SQUARE, _NOT_BRACKET)
    for _ in range(MAX_DEPTH):
        if b"[]" not in s:
            return
        s = s.replace(b"[]", b"")
    if b"[]" in s:
        raise InputFileError(path, f"JSON nested deeper than {MAX_DEPTH} levels (MAX_DEPTH); refused before parsing", line)


def load_json(raw: bytes, path: str | Path, line: int | None = None):
    """``json.loads`` of ``raw`` after the depth check; a syntax error is one ``InputFileError``."""
    import json

    check_json_depth(raw, path, line)
    text = raw.decode("utf-8-sig")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputFileError(path, f"not valid JSON ({e.msg} at column {e.colno})", e.lineno if line is None else line) from None


def read_json_file(path: str | Path, what: str = ""):
    """A small JSON file (a model's ``config.json``, an index, ``--tools``): a regular file,
    under ``MAX_JSON_FILE_BYTES``, UTF-8, nested under ``MAX_DEPTH``; errors name the file."""
    raw = read_regular(path, MAX_JSON_FILE_BYTES, what)
    try:
        return load_json(raw, path)
    except UnicodeDecodeError as e:
        raise InputFileError(path, f"not UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})") from None


def check_yaml_size(text: str, where: str) -> None:
    """Refuse YAML nested deeper than ``MAX_DEPTH`` or expanding to more than ``MAX_YAML_VALUES``
    values with its aliases resolved, from PyYAML's event stream (no recursion, nothing built)."""
    import yaml

    anchored: dict[str, int] = {}  # anchor -> the values its node expands to
    stack: list[list] = []  # [anchor, values so far] per open collection
    total = 0
    for ev in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            stack.append([ev.anchor, 1])
            if len(stack) > MAX_DEPTH:
                raise InputFileError(where, f"YAML nested deeper than {MAX_DEPTH} levels; refused before parsing",
                                     ev.start_mark.line + 1)
            continue
        if isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            anchor, n = stack.pop()
        elif isinstance(ev, yaml.ScalarEvent):
            anchor, n = ev.anchor, 1
        elif isinstance(ev, yaml.AliasEvent):
            anchor, n = None, anchored.get(ev.anchor, 1)
        else:
            continue
        if anchor is not None:
            anchored[anchor] = n
        if stack:
            stack[-1][1] += n
        else:
            total += n
        if max(total, stack[-1][1] if stack else 0) > MAX_YAML_VALUES:
            raise InputFileError(where, f"YAML expands to more than {MAX_YAML_VALUES:,} values with its aliases "
                                        "resolved (an alias bomb?); refused before building it", ev.start_mark.line + 1)


def load_yaml(text: str, where: str):
    """``yaml.safe_load`` after ``check_yaml_size``."""
    import yaml

    check_yaml_size(text, where)
    return yaml.safe_load(text)
