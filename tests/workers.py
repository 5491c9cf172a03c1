"""A search worker in its own process, for the kill -9 and many-worker tests.

`fork(spec, out)`, or `python -m tests.workers '{"url": ..., "study": ..., ...}'`, runs
nas.study.search.loop's open_study and run_search on the tiny space with a fake training (a sleep,
then a stored 'ok' run with weights), so that real processes can be started by the dozen and
killed at any moment. The worker reports its tally and the genomes it trained as JSON. Keys
of the spec: url, study, trials, sleep_s, hang_at (the n-th training, from 1, sleeps for an
hour), heartbeat_s, grace_s, seconds (a deadline), sampler, seed, enospc (trainings fail so),
weights (floats per stored run), max_pages (the store's SQLite file may not grow past it).
"""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "nas" / "search_spaces" / "tiny.toml"


def launch(**spec: Any) -> subprocess.Popen[str]:
    """Start a worker process running `spec`; its stdout and stderr are pipes."""
    return subprocess.Popen([sys.executable, "-m", "tests.workers", json.dumps(spec)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def fake_context(url: str, pages: int | None = None) -> Any:
    """A Context of the tiny space whose data and teacher are stand-ins (training is faked);
    with `pages`, the store's connections may not grow the SQLite file past that many pages."""
    import sqlalchemy as sa
    import torch

    from nas.model.space import InputShape, load_space
    from nas.store.runs import Store
    from nas.train.experiment import Context

    data = SimpleNamespace(classes=[str(c) for c in range(10)], image_size=(16, 16),
                           shape=InputShape(3, 16, 16), fingerprint="digits-16x16")
    teacher = SimpleNamespace(fingerprint="teacher", val_accuracy=0.9, test_accuracy=0.875)
    store = Store(url)
    if pages:               # a real SQLITE_FULL once the file would grow past `pages` pages
        sa.event.listen(store._engine, "connect",
                        lambda connection, record: connection.execute(f"PRAGMA max_page_count = {pages}"))
        store._engine.dispose()
    return Context(space=load_space(TINY), data=data, views=None, batches=None, teacher=teacher,
                   bank=None, store=store, device=torch.device("cpu"))


def fake_training(spec: dict[str, Any], trained: list[str]) -> Any:
    """train_genome's stand-in: store a 'running' run, sleep, store it 'ok' with weights."""
    import torch

    from tests.fake_training import finish_run, start_run

    def train(ctx: Any, genome: Any, *, epochs: int | None = None, seed: int = 0,
              study: str | None = None, trial: int | None = None, **unused: Any) -> Any:
        run = start_run(ctx, genome, seed, study, trial)
        trained.append(f"{genome.notation} {genome.attention}")
        if spec.get("enospc"):
            ctx.store.update_run(run.id, status="interrupted")
            raise OSError(errno.ENOSPC, "No space left on device", "/full/disk/weights")
        time.sleep(3600 if len(trained) == spec.get("hang_at") else spec.get("sleep_s", 0.0))
        return finish_run(ctx, run, torch.full((spec.get("weights", 3),), float(run.id)))

    return train


def work(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one worker: its tally and the genomes it trained."""
    import optuna

    from nas.study.search import loop

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trained: list[str] = []
    loop.train_genome = fake_training(spec, trained)
    ctx = fake_context(spec["url"], spec.get("max_pages"))
    deadline = time.monotonic() + spec["seconds"] if spec.get("seconds") else None
    settings = loop.SearchSettings(
        study=spec["study"], trials=spec["trials"], epochs=1, sampler=spec.get("sampler", "tpe"),
        seed=spec.get("seed", 0), deadline=deadline, heartbeat_s=spec.get("heartbeat_s", 30),
        grace_s=spec.get("grace_s", 120))
    study = loop.open_study(ctx, settings, "digits")
    tally = loop.run_search(ctx, settings, study)
    ctx.store.close()
    return {"trained": tally.trained, "reused": tally.reused, "failed": tally.failed,
            "genomes": trained}


def fork(spec: dict[str, Any], out: Path) -> multiprocessing.Process:
    """Start a worker as a forked process (no second import of torch and optuna): it writes
    its result to `out` as JSON, or its traceback to `out` + '.err' and exits 1."""
    process = multiprocessing.get_context("fork").Process(target=_child, args=(spec, out))
    process.start()
    return process


def _child(spec: dict[str, Any], out: Path) -> None:
    """The forked worker's body."""
    import warnings

    warnings.filterwarnings("ignore")
    try:
        result = work(spec)
    except BaseException:
        Path(f"{out}.err").write_text(traceback.format_exc())
        os._exit(1)
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore")
    print(json.dumps(work(json.loads(sys.argv[1]))))
