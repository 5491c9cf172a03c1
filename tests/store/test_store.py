"""nas.store.runs on real SQLite files in tmp dirs and on a real PostgreSQL server."""

from __future__ import annotations

import dataclasses
import multiprocessing
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from nas.errors import StoreError
from nas.store import claims
from nas.store.database import DEFAULT_URL, normalize_url, retry_races
from nas.store.quotas import Countdown, SharedQuota
from nas.store.runs import RunRecord, Store, TeacherRecord, bytes_to_state, state_to_bytes
from nas.store.tables import Teacher
from tests.postgres import free_port, postgres_db, postgres_url  # noqa: F401

GENOME = "[2,8,6,1,0] [2,16,4,1,0]"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database: a SQLite file in tmp_path, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'studies.db'}"
    return request.getfixturevalue("postgres_db")


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    """A Store on the fresh database."""
    opened = Store(url)
    yield opened
    opened.close()


def make_run(**fields: Any) -> RunRecord:
    """A plausible run of the report's final student; keyword arguments override fields."""
    values: dict[str, Any] = dict(
        id=None, study="s", trial=0, genome=GENOME, attention="eca", seed=0,
        recipe={"lr": 0.005, "epochs": 3}, data_fingerprint="data-1", teacher_fingerprint="teacher-1",
        flops=180_348_032, params=10_754, status="running",
    )  # fmt: skip
    return RunRecord(**{**values, **fields})


def make_state(seed: int = 0) -> dict[str, Any]:
    """A small state_dict with several dtypes, as a student's would have."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    return {
        "stem.conv.weight": torch.randn(8, 3, 3, 3, generator=gen),
        "stem.bn.running_var": torch.rand(8, generator=gen, dtype=torch.float64),
        "stem.bn.num_batches_tracked": torch.tensor(7),
        "head.weight": torch.randn(2, 16, generator=gen).to(torch.bfloat16),
    }


def assert_same_state(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Bit-equal tensors with the same names and dtypes."""
    import torch

    assert list(got) == list(want)
    for name, tensor in want.items():
        assert got[name].dtype == tensor.dtype
        assert torch.equal(got[name], tensor), name


# --- URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "want"),
    [
        (None, DEFAULT_URL),
        ("runs/x.db", "sqlite:///runs/x.db"),
        ("/abs/x.sqlite", "sqlite:////abs/x.sqlite"),
        ("sqlite:///a.db", "sqlite:///a.db"),
        ("postgresql://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ],
)
def test_normalize_url(given: str | None, want: str) -> None:
    assert normalize_url(given) == want


@pytest.mark.parametrize(
    ("given", "scheme"),
    [("sqlte:///x.db", "sqlite"), ("postgresq://u@h/db", "postgresql"), ("postgress://u@h/db", "postgres")],
)
def test_scheme_typo_names_url_and_nearest_scheme(given: str, scheme: str) -> None:
    with pytest.raises(StoreError) as error:
        normalize_url(given)
    assert str(error.value).startswith(given.split("/")[0])
    assert f"(did you mean `{scheme}`?)" in str(error.value)


def test_scheme_typo_hides_password() -> None:
    with pytest.raises(StoreError, match="did you mean `postgresql`") as error:
        Store("postgresq://nas:hunter2@localhost/db")
    assert "hunter2" not in str(error.value)


def test_not_a_url() -> None:
    with pytest.raises(StoreError, match="'studies' is not a database URL"):
        normalize_url("studies")


def test_default_url_is_studies_db_in_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = Store()
    store.put_blob("k", b"v")
    store.close()
    assert store.url == "sqlite:///studies.db"
    assert sqlite3.connect(tmp_path / "studies.db").execute("SELECT data FROM nas_blobs").fetchall() == [
        (b"v",)
    ]


# --- round trips on SQLite and PostgreSQL -------------------------------------------------------


def test_run_round_trip_keeps_every_field_and_bit_equal_weights(store: Store) -> None:
    state = make_state()
    zone = timezone(timedelta(hours=2))
    rec = make_run(
        status="ok", val_accuracy=0.775, test_accuracy=0.7916666666666666, best_epoch=2,
        history=[{"epoch": 0, "loss": 1.25, "val_accuracy": 0.5}, {"epoch": 1, "loss": 0.5}],
        meta={"classes": ["cat", "dog"], "input": [3, 185, 160], "mean": [0.5, 0.25, 0.125]},
        weights=state_to_bytes(state), duration_s=12.5, created=datetime(2024, 1, 1, 12, tzinfo=zone),
    )  # fmt: skip
    run_id = store.add_run(rec)
    got = store.get_run(run_id)
    assert got.id == run_id
    assert got.created == datetime(2024, 1, 1, 10, tzinfo=UTC) and got.created.utcoffset() == timedelta(0)
    assert dataclasses.replace(got, id=None, created=rec.created) == rec
    assert_same_state(bytes_to_state(got.weights), state)


def test_created_defaults_to_now_in_utc(store: Store) -> None:
    got = store.get_run(store.add_run(make_run()))
    assert got.created is not None and got.created.tzinfo is not None
    assert abs(datetime.now(UTC) - got.created) < timedelta(minutes=1)


def test_update_run_sets_fields_and_refuses_bad_ones(store: Store) -> None:
    run_id = store.add_run(make_run())
    store.update_run(run_id, status="ok", val_accuracy=0.8, history=[{"epoch": 0}], weights=b"\x00\xff")
    got = store.get_run(run_id)
    assert (got.status, got.val_accuracy, got.history, got.weights) == (
        "ok",
        0.8,
        [{"epoch": 0}],
        b"\x00\xff",
    )
    with pytest.raises(StoreError, match=r"`val_acc` is not a run field \(did you mean `val_accuracy`\?\)"):
        store.update_run(run_id, val_acc=0.9)
    with pytest.raises(StoreError, match="run status must be one of .* got 'done'"):
        store.update_run(run_id, status="done")
    with pytest.raises(StoreError, match="run 999 does not exist"):
        store.update_run(999, status="ok")
    with pytest.raises(StoreError, match="run 999 does not exist"):
        store.get_run(999)
    with pytest.raises(StoreError, match="got 'finished'"):
        store.add_run(make_run(status="finished"))


def test_non_finite_numbers_are_stored_as_null(store: Store) -> None:
    import torch

    history = [{"loss": float("nan"), "grad": float("inf"), "acc": torch.tensor(0.5)}]
    run_id = store.add_run(make_run(status="nan", val_accuracy=float("nan"), history=history))
    store.update_run(run_id, test_accuracy=float("-inf"))
    got = store.get_run(run_id)
    assert (got.val_accuracy, got.test_accuracy) == (None, None)
    assert got.history == [{"loss": None, "grad": None, "acc": 0.5}]


def test_teacher_upsert_replaces_by_fingerprint(store: Store) -> None:
    first = TeacherRecord(
        "fp-1", {"kind": "genome"}, 0.85, 0.8, state_to_bytes(make_state(1)), [{"epoch": 0}]
    )
    second = dataclasses.replace(first, val_accuracy=0.9, weights=state_to_bytes(make_state(2)), history=[])
    store.put_teacher(first)
    store.put_teacher(second)
    got = store.get_teacher("fp-1")
    assert got is not None and got.created is not None
    assert dataclasses.replace(got, created=None) == second
    assert_same_state(bytes_to_state(got.weights), make_state(2))
    assert store.get_teacher("fp-2") is None
    with store.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Teacher)) == 1


def test_find_run_returns_newest_with_status(store: Store) -> None:
    store.add_run(make_run(status="ok", val_accuracy=0.5))
    newest = store.add_run(make_run(status="ok", val_accuracy=0.6, weights=b"w"))
    failed = store.add_run(make_run(status="failed"))
    store.add_run(make_run(status="ok", attention="se"))
    store.add_run(make_run(status="ok", study="other"))
    store.add_run(make_run(status="running", genome="[1,8,1,1,0]"))
    found = store.find_run("s", GENOME, "eca")
    assert found is not None and (found.id, found.val_accuracy, found.weights) == (newest, 0.6, None)
    assert store.find_run("s", GENOME, "eca", with_weights=True).weights == b"w"
    assert store.find_run("s", GENOME, "eca", status="failed").id == failed
    assert store.find_run("s", "[1,8,1,1,0]", "eca") is None
    assert store.find_run("s", "[1,8,1,1,0]", "eca", status="running") is not None
    assert store.find_run("s", GENOME, "none") is None
    assert store.find_run("nope", GENOME, "eca") is None


def test_list_runs_does_not_load_weights_unless_asked(store: Store) -> None:
    ids = [store.add_run(make_run(trial=i, weights=bytes([i]) * 1000)) for i in range(3)]
    store.add_run(make_run(study="other", weights=b"x"))
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        runs = store.list_runs("s")
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)
    assert [r.id for r in runs] == ids and [r.trial for r in runs] == [0, 1, 2]
    assert all(r.weights is None for r in runs)
    assert any("nas_runs" in s for s in statements) and not any("weights" in s for s in statements)
    assert [r.weights for r in store.list_runs("s", with_weights=True)] == [
        bytes([i]) * 1000 for i in range(3)
    ]
    assert len(store.list_runs()) == 4


def test_mark_interrupted_counts_and_scopes_by_study(store: Store) -> None:
    running = [store.add_run(make_run()) for _ in range(3)]
    done = store.add_run(make_run(status="ok"))
    elsewhere = store.add_run(make_run(study="other"))
    assert store.mark_interrupted("s") == 3
    assert [store.get_run(i).status for i in running] == ["interrupted"] * 3
    assert (store.get_run(done).status, store.get_run(elsewhere).status) == ("ok", "running")
    assert store.mark_interrupted() == 1
    assert store.mark_interrupted() == 0


def test_blobs_round_trip_and_upsert(store: Store) -> None:
    data = bytes(range(256)) * 4096
    store.put_blob("teacher-outputs/fp-1", data)
    assert store.get_blob("teacher-outputs/fp-1") == data
    store.put_blob("teacher-outputs/fp-1", b"")
    assert store.get_blob("teacher-outputs/fp-1") == b""
    assert store.get_blob("missing") is None


@pytest.mark.parametrize("optuna_first", [True, False], ids=["optuna-first", "store-first"])
def test_optuna_and_store_share_one_database(url: str, optuna_first: bool) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = None if optuna_first else Store(url)
    study = optuna.create_study(storage=normalize_url(url), study_name="shared", direction="maximize")
    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=3)
    store = store or Store(url)
    run_id = store.add_run(make_run(study="shared", trial=2, status="ok"))
    store.close()
    reloaded = optuna.load_study(study_name="shared", storage=normalize_url(url))
    assert [t.number for t in reloaded.trials] == [0, 1, 2]
    assert Store(url).get_run(run_id).trial == 2
    engine = sa.create_engine(normalize_url(url))
    tables = set(sa.inspect(engine).get_table_names())
    engine.dispose()
    assert {"nas_runs", "nas_teachers", "nas_blobs", "studies", "trials"} <= tables


def _write_runs(url: str, name: str, count: int, barrier: Any, results: Any) -> None:
    """Worker process: open the store at the same moment as the other, then write runs."""
    try:
        barrier.wait(timeout=60)
        store = Store(url)
        for trial in range(count):
            run_id = store.add_run(make_run(study=name, trial=trial))
            store.update_run(run_id, status="ok", val_accuracy=trial / count)
            store.put_blob("shared", name.encode())
        store.close()
        results.put((name, "ok"))
    except Exception as exc:  # reported to the parent, which fails the test with it
        results.put((name, repr(exc)))


def test_two_processes_write_to_one_database(url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, results, count = ctx.Barrier(2), ctx.Queue(), 40
    workers = [
        ctx.Process(target=_write_runs, args=(url, f"p{i}", count, barrier, results)) for i in range(2)
    ]
    for worker in workers:
        worker.start()
    outcomes = dict(results.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=30)
    assert outcomes == {"p0": "ok", "p1": "ok"}
    store = Store(url)
    runs = store.list_runs()
    assert len({r.id for r in runs}) == 2 * count
    for name in ("p0", "p1"):
        mine = [r for r in runs if r.study == name]
        assert [r.trial for r in mine] == list(range(count)) and {r.status for r in mine} == {"ok"}
    assert store.get_blob("shared") in (b"p0", b"p1")


# --- SQLite files -------------------------------------------------------------------------------


def test_sqlite_uses_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "x.db"))
    assert store.url == f"sqlite:///{tmp_path / 'x.db'}"
    with store.session() as session:
        pragmas = [session.execute(sa.text(f"PRAGMA {p}")).scalar() for p in ("busy_timeout", "foreign_keys")]
    assert pragmas[0] >= 10_000 and pragmas[1] == 1
    store.close()
    assert sqlite3.connect(tmp_path / "x.db").execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.parametrize(
    ("where", "message"),
    [("file.txt/x.db", "is not a directory"), ("missing/x.db", "does not exist")],
)
def test_unusable_sqlite_path_is_an_error_and_creates_nothing(
    tmp_path: Path, where: str, message: str
) -> None:
    (tmp_path / "file.txt").write_text("a regular file\n")
    with pytest.raises(StoreError, match=message) as error:
        Store(f"sqlite:///{tmp_path / where}")
    assert str(error.value).startswith(f"sqlite:///{tmp_path / where}: ") and "\n" not in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_file_that_is_not_a_database_is_an_error_and_left_alone(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("not a database, " * 100)
    with pytest.raises(StoreError, match="junk.db: file is not a database"):
        Store(str(junk))
    assert junk.read_text() == "not a database, " * 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.db"]


# --- PostgreSQL connection errors ---------------------------------------------------------------


def test_unreachable_server_is_a_one_line_error_without_password() -> None:
    url = f"postgresql://nas:hunter2@127.0.0.1:{free_port()}/nas"
    with pytest.raises(StoreError) as error:
        Store(url)
    message = str(error.value)
    assert message.startswith(f"postgresql+psycopg://nas:***@127.0.0.1:{make_url(url).port}/nas: ")
    assert "hunter2" not in message and "\n" not in message


def test_bad_credentials_are_an_error_without_password(postgres_url: str) -> None:  # noqa: F811
    bad = make_url(postgres_url).set(username="nas_intruder", password="wrong-secret")
    with pytest.raises(StoreError, match="nas_intruder") as error:
        Store(bad.render_as_string(hide_password=False))
    assert "wrong-secret" not in str(error.value)


def test_missing_database_is_an_error(postgres_url: str) -> None:  # noqa: F811
    missing = make_url(postgres_url).set(database="nas_no_such_database")
    with pytest.raises(StoreError, match='database "nas_no_such_database" does not exist'):
        Store(missing.render_as_string(hide_password=False))


# --- weights ------------------------------------------------------------------------------------


class NotATensor:
    """Something a weights_only load must refuse."""


def test_corrupt_weights_are_a_store_error() -> None:
    import torch

    good = state_to_bytes(make_state())
    assert_same_state(bytes_to_state(good), make_state())
    for data in (b"", b"not weights at all", good[: len(good) // 2]):
        with pytest.raises(StoreError, match=rf"stored weights \({len(data)} bytes\) cannot be read"):
            bytes_to_state(data)
    with pytest.raises(StoreError, match="cannot be read"):
        bytes_to_state(state_to_bytes({"x": NotATensor()}))  # type: ignore[dict-item]
    with pytest.raises(StoreError, match="must be a state_dict, got Tensor"):
        bytes_to_state(state_to_bytes(torch.zeros(2)))  # type: ignore[arg-type]


# --- claims -------------------------------------------------------------------------------------


def test_claim_is_mine_then_taken_then_done_once_the_run_is_ok(store: Store) -> None:
    first = claims.claim(store, "s", GENOME, "eca", worker="w1", trial=1)
    assert first.outcome == claims.MINE
    second = claims.claim(store, "s", GENOME, "eca", worker="w2", trial=2)
    assert (second.outcome, second.holder, second.holder_trial) == (claims.TAKEN, "w1", 1)
    assert claims.claim(store, "s", GENOME, "se", worker="w2", trial=2).outcome == claims.MINE
    assert claims.claim(store, "other", GENOME, "eca", worker="w2", trial=2).outcome == claims.MINE
    run_id = store.add_run(make_run(study="s", trial=1, status="running"))
    store.update_run(run_id, status="ok", val_accuracy=0.5)
    assert claims.release(store, first) and not claims.release(store, first)
    done = claims.claim(store, "s", GENOME, "eca", worker="w2", trial=2)
    assert done.outcome == claims.DONE and done.run is not None and done.run.id == run_id
    assert ("s", GENOME, "eca") not in {("s", *h[:2]) for h in claims.holders(store, "s")}


def test_failed_or_abandoned_claims_may_be_trained_again(store: Store) -> None:
    held = claims.claim(store, "s", GENOME, "eca", worker="w1", trial=1)
    store.add_run(make_run(study="s", trial=1, status="running"))
    store.update_run(store.list_runs("s")[0].id, status="nan")
    claims.release(store, held)                                     # failed: not DONE
    again = claims.claim(store, "s", GENOME, "eca", worker="w2", trial=2)
    assert again.outcome == claims.MINE
    running = store.add_run(make_run(study="s", trial=2, status="running"))
    assert claims.abandon_trial(store, "s", [2, 7]) == (1, 1)       # the worker died
    assert store.get_run(running).status == "interrupted"
    assert claims.claim(store, "s", GENOME, "eca", worker="w3", trial=3).outcome == claims.MINE
    assert claims.abandon_trial(store, "s", []) == (0, 0)


@pytest.mark.parametrize(("status", "outcome"), [
    ("pruned", claims.DONE), ("failed", claims.MINE), ("interrupted", claims.MINE),
    ("nan", claims.MINE)])
def test_a_pruned_run_is_judged_but_a_failed_or_interrupted_one_is_not(
        store: Store, status: str, outcome: str) -> None:
    held = claims.claim(store, "s", GENOME, "eca", worker="w1", trial=1)
    run_id = store.add_run(make_run(study="s", trial=1, status="running"))
    store.update_run(run_id, status=status, val_accuracy=0.25)
    assert claims.release(store, held)
    again = claims.claim(store, "s", GENOME, "eca", worker="w2", trial=2)
    assert again.outcome == outcome
    if outcome == claims.DONE:          # the pruned run, and no claim left behind
        assert again.run is not None and (again.run.id, again.run.status) == (run_id, "pruned")
        assert claims.holders(store, "s") == []
    else:                               # trained again: w2 holds it now
        assert again.run is None and claims.holders(store, "s") == [(GENOME, "eca", "w2", 2)]


def test_an_ok_run_is_preferred_to_a_pruned_one(store: Store) -> None:
    ok = store.add_run(make_run(study="s", trial=1, status="ok", val_accuracy=0.5))
    store.add_run(make_run(study="s", trial=2, status="pruned", val_accuracy=0.25))
    done = claims.claim(store, "s", GENOME, "eca", worker="w1", trial=3)
    assert done.outcome == claims.DONE and done.run is not None and done.run.id == ok


def test_wait_for_returns_when_the_holder_releases(store: Store) -> None:
    held = claims.claim(store, "s", GENOME, "eca", worker="w1", trial=1)
    taken = claims.claim(store, "s", GENOME, "eca", worker="w2", trial=2)
    assert claims.wait_for(store, taken, poll_s=0.01, deadline=time.monotonic() + 0.1) \
        .outcome == claims.TAKEN
    claims.release(store, held)
    assert claims.wait_for(store, taken, poll_s=0.01).outcome == claims.MINE


def _claim_at_once(url: str, worker: str, barrier: Any, results: Any) -> None:
    """Worker process: wait for the others, then claim one genome and one worker number."""
    try:
        store = Store(url)
        barrier.wait(timeout=60)
        got = claims.claim(store, "race", GENOME, "eca", worker=worker, trial=None)
        results.put((worker, got.outcome, claims.join(store, "race", worker)))
        store.close()
    except Exception as exc:  # reported to the parent, which fails the test with it
        results.put((worker, repr(exc), -1))


def test_one_of_six_processes_claiming_at_once_gets_it(url: str) -> None:
    Store(url).close()
    ctx = multiprocessing.get_context("fork")      # cheap starts; each opens its own Store
    barrier, results = ctx.Barrier(6), ctx.Queue()
    processes = [ctx.Process(target=_claim_at_once, args=(url, f"w{i}", barrier, results))
                 for i in range(6)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    assert sorted(o[1] for o in outcomes) == [claims.MINE] + [claims.TAKEN] * 5, outcomes
    assert sorted(o[2] for o in outcomes) == list(range(6))          # distinct worker numbers


# --- quotas -------------------------------------------------------------------------------------


def test_quota_counts_down_gives_back_and_is_removed(store: Store) -> None:
    quota = SharedQuota.create(store, "s:run", 2)
    assert [quota.take(), quota.take(), quota.take()] == [True, True, False]
    quota.give_back()
    assert quota.remaining() == 1 and quota.take() and not quota.take()
    assert not SharedQuota(store, "s:other").take()                  # no such row: nothing
    quota.remove()
    assert quota.remaining() is None and not quota.take()
    own = Countdown(1)
    assert own.take() and not own.take()
    own.give_back()
    assert own.take()


def _drain(url: str, barrier: Any, results: Any) -> None:
    """Worker process: take units of one quota until none is left; report how many."""
    try:
        store, taken = Store(url), 0
        quota = SharedQuota(store, "race")
        barrier.wait(timeout=60)
        while quota.take():
            taken += 1
        results.put(taken)
        store.close()
    except Exception as exc:  # reported to the parent, which fails the test with it
        results.put(repr(exc))


def test_four_processes_draining_one_quota_take_exactly_its_count(url: str) -> None:
    store = Store(url)
    SharedQuota.create(store, "race", 200)
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    processes = [ctx.Process(target=_drain, args=(url, barrier, results)) for _ in range(4)]
    for process in processes:
        process.start()
    taken = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    assert sum(taken) == 200, taken
    assert SharedQuota(store, "race").remaining() == 0
    store.close()


def test_table_creation_races_are_retried_and_other_errors_are_one_line() -> None:
    calls = []

    def racing() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("CREATE TABLE studies", {}, Exception("table studies already exists"))
        return "storage"

    assert retry_races(racing, "sqlite:///x.db") == "storage" and len(calls) == 3

    def broken() -> str:
        raise OperationalError("SELECT", {}, Exception("disk I/O error\nmore"))

    with pytest.raises(StoreError, match=r"^sqlite:///x.db: disk I/O error$"):
        retry_races(broken, "sqlite:///x.db")


@pytest.mark.parametrize("given", ["sqlite://", "sqlite:///:memory:", "sqlite+pysqlite://"])
def test_a_sqlite_url_without_a_file_is_refused(given: str) -> None:
    with pytest.raises(StoreError, match="names no database file, and a study must outlive"):
        normalize_url(given)
