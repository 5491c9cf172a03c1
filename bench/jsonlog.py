"""The JSON lines that bench runs log, one object per line, read back for their summaries."""

from __future__ import annotations

import json
from pathlib import Path


def json_lines(folder: Path, pattern: str = "*.log") -> list[dict]:
    """Every line that starts with `{` in the files of `folder` matching `pattern`, in file-name
    order, parsed."""
    found = []
    for log in sorted(folder.glob(pattern)):
        found += [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return found
