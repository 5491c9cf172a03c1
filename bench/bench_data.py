"""Time load_data (cold / warm) and build_views with the report's six views.

Run by hand: `python bench/bench_data.py [SOURCE] [HxW]` (default: the hymenoptera
reference folder at 185x160). Uses a fresh temporary cache so "cold" really is cold.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from nas.data.dataset import build_views, load_data, parse_image_size
from nas.model.recipe import REPORT_VIEWS, AugmentConfig

HYMENOPTERA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hymenoptera"


def _timed(label: str, run: object) -> object:
    """Run `run()` and print its wall time."""
    start = time.perf_counter()
    result = run()  # type: ignore[operator]
    print(f"{label:<28} {time.perf_counter() - start:7.2f} s")
    return result


def main(argv: list[str]) -> None:
    """Cold and warm timings of decoding and of building the fixed views."""
    source = argv[0] if argv else str(HYMENOPTERA)
    size = parse_image_size(argv[1]) if len(argv) > 1 else None
    config = AugmentConfig(views=REPORT_VIEWS)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        data = _timed("load_data cold", lambda: load_data(source, size, cache_dir=cache))
        _timed("load_data warm", lambda: load_data(source, size, cache_dir=cache))
        views = _timed("build_views cold (6 views)", lambda: build_views(data.train, config, cache_dir=cache))
        _timed("build_views warm", lambda: build_views(data.train, config, cache_dir=cache))
    print(
        f"{source} at {data.image_size}: train {len(data.train.labels)}, val {len(data.val.labels)},"
        f" test {len(data.test.labels)}, skipped {data.skipped}; views {tuple(views.images.shape)}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
