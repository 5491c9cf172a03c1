"""The error family of `nas`: every user-facing failure is a NasError.

The CLI prints `str(error)` on one line and exits with code 2; `--debug` shows
the traceback. Messages say where, which rule and which value, e.g.
``search_spaces/x.toml: stage[2].s must be 1 or 2, got 3``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class NasError(Exception):
    """Base class of every error `nas` reports to a user."""


class SpaceError(NasError):
    """A search-space file or one of its sections is invalid."""


class GenomeError(NasError):
    """A genome is malformed or does not fit the space it is checked against."""


class DataError(NasError):
    """A data set cannot be found, read or split."""


class StoreError(NasError):
    """The database cannot be opened, read or written."""


class TrainError(NasError):
    """Training cannot start (bad recipe, teacher that does not fit, ...)."""


class ReportError(NasError):
    """A study is missing, empty or holds nothing that fits, or a report file cannot be written."""


class CheckpointError(NasError):
    """A checkpoint or ONNX file cannot be written, read or rebuilt."""


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP (systemd, `docker stop`, `timeout`, a closed terminal), raised where
    Ctrl-C raises KeyboardInterrupt so that it gets the same clean stop; not an error. The CLI
    exits with 128 + `signum`."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def nearest(name: str, options: Iterable[str]) -> str:
    """' (did you mean `x`?)' for the closest option, or '' when nothing is close."""
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    return f" (did you mean `{match[0]}`?)" if match else ""
