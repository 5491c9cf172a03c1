"""What a study may be called: Optuna's limit on a name's length, and `ablate/`, the namespace of
ablations' runs, which search studies may not use.

Shared by the search (its `--study` is checked before anything is written) and the ablation
(its runs are tagged `ablate/<name>` in the store).
"""

from __future__ import annotations

from nas.errors import SpaceError

ABLATION_PREFIX = "ablate/"     # ablations' study names; search studies may not use it
MAX_STUDY_NAME = 512            # Optuna's limit on study names (an indexed column)


def check_study_name(name: str) -> None:
    """Refuse a study name Optuna's tables cannot hold, before anything is written."""
    if not name.strip() or len(name) > MAX_STUDY_NAME:
        raise SpaceError(f"--study must be 1 to {MAX_STUDY_NAME} characters, got "
                         f"{len(name)} characters")
    if name.startswith(ABLATION_PREFIX):
        raise SpaceError(f"--study must not start with {ABLATION_PREFIX!r}, the namespace of "
                         f"ablations' runs; got {name[:100]!r}")
