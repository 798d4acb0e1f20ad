"""Output folders that appear whole or not at all.

``check_writable(out)`` fails in one line *before* any work when ``out`` cannot be created
(a file in the way, a read-only parent, a path under a file). ``atomic_dir(out)`` yields
``<out>.tmp`` to write into and renames it to ``out`` only when the block succeeds; on any
error the temporary folder is removed, so a failed command leaves nothing behind.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> with atomic_dir(root / "model") as tmp:
...     _ = (tmp / "weights").write_text("w")
>>> sorted(p.name for p in root.iterdir())
['model']
>>> try:
...     with atomic_dir(root / "broken") as tmp:
...         _ = (tmp / "half").write_text("h")
...         raise RuntimeError("NaN in a tensor")
... except RuntimeError:
...     pass
>>> sorted(p.name for p in root.iterdir())
['model']
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hermes3.core.errors import Hermes3Error


class OutputError(Hermes3Error):
    """An output path that cannot be written."""


def check_writable(out: str | Path, what: str = "output folder") -> Path:
    """``out`` as a Path, after checking that a folder can be created there.

    >>> check_writable("/dev/null/x")
    Traceback (most recent call last):
    ...
    hermes3.core.outputs.OutputError: output folder /dev/null/x: /dev/null is not a folder
    """
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise OutputError(f"{what} {out}: a file of that name exists (expected a folder or nothing)")
    parent = out if out.exists() else out.parent
    while not parent.exists():  # the nearest existing ancestor is the one that must be writable
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{what} {out}: {parent} is not a folder")
    # A real probe, not os.access: that says yes to root everywhere, even on /proc or a
    # read-only mount. The probe folder is removed at once.
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".hermes3-probe-", dir=parent))
    except OSError as e:
        raise OutputError(f"{what} {out}: cannot create folders in {parent} ({e.strerror})") from None
    return out


@contextmanager
def atomic_dir(out: str | Path, what: str = "output folder") -> Iterator[Path]:
    """Yield an empty ``<out>.tmp``; replace ``out`` with it on success, delete it on failure."""
    out = check_writable(out, what)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
    except OSError as e:
        raise OutputError(f"{what} {out}: cannot create it ({e.strerror})") from None
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
