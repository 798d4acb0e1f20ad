"""The one error base class of hermes3.

Every error a user can cause (a bad file, record, config key, argument or model folder)
derives from ``Hermes3Error``. The CLI catches it in one place and prints one line,
``hermes3 <command>: <message>``, with exit code 2 (a traceback only with ``--debug``).
A message names the culprit (file, line or record, field or key) and what was expected.

It derives from ``ValueError`` so code that caught the older per-module errors as
``ValueError`` keeps working.

>>> from hermes3.core.config import ConfigError
>>> issubclass(ConfigError, Hermes3Error), issubclass(Hermes3Error, ValueError)
(True, True)
"""

from __future__ import annotations


class Hermes3Error(ValueError):
    """Bad input, reported to the user as one line (see the module docstring)."""


class InputFileError(Hermes3Error):
    """A data file that cannot be read: missing, a folder, not UTF-8, not JSON, empty.

    >>> str(InputFileError("a.jsonl", "no records (the file is empty)", line=None))
    'a.jsonl: no records (the file is empty)'
    >>> str(InputFileError("a.jsonl", "not valid JSON (Expecting value)", line=3))
    'a.jsonl:3: not valid JSON (Expecting value)'
    """

    def __init__(self, path, problem: str, line: int | None = None):
        self.path, self.problem, self.line = str(path), problem, line
        super().__init__(f"{path}{f':{line}' if line is not None else ''}: {problem}")
