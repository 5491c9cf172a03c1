"""Read-only commands stay read-only: `nas report` and `nas export` on a database that holds
no nas study refuse in one line (exit 2) and leave every file as it was; storage URLs and
study names that cannot hold a study are refused before anything is written."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

from nas.cli import main
from nas.store.database import existing_tables
from tests.postgres import postgres_db, postgres_url  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "nas" / "search_spaces" / "tiny.toml")


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file in `folder` with its bytes."""
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> str:
    """Run `nas ARGV`: exit 2 and one line on stderr that contains `message`."""
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert message in err, err
    return err


def unrelated(path: Path, wal: bool) -> Path:
    """A SQLite file of some other program: one table, one row."""
    with sqlite3.connect(path) as connection:
        if wal:
            connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("CREATE TABLE people (name TEXT)")
        connection.execute("INSERT INTO people VALUES ('ada')")
    connection.close()
    return path


def plain_optuna(path: Path) -> Path:
    """A single-objective Optuna study made without nas, with one finished trial."""
    study = optuna.create_study(study_name="plain", storage=f"sqlite:///{path}")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1) ** 2, n_trials=1)
    return path


@pytest.mark.parametrize("wal", [False, True])
@pytest.mark.parametrize("command", [["report"], ["report", "--json"], ["export", "best"]])
def test_report_and_export_leave_an_unrelated_sqlite_file_alone(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, command: list[str], wal: bool) -> None:
    db = unrelated(tmp_path / "other.db", wal)
    before = snapshot(tmp_path)
    one_line_exit_2(capsys, [*command, "--storage", str(db), *(
        ["--out", str(tmp_path / "student.pt")] if command[0] == "export" else [])],
        "holds no nas study (no Optuna tables")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(("argv", "message"), [
    (["report"], "holds no nas study, only Optuna studies made otherwise (plain)"),
    (["report", "--study", "plain"], "study 'plain' was not made by `nas search` (1 objective(s)"),
    (["export", "best"], "holds no nas study, only Optuna studies made otherwise (plain)"),
    (["export", "0", "--study", "plain"], "study 'plain' was not made by `nas search`"),
])
def test_a_plain_optuna_study_gets_a_one_line_refusal(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str) -> None:
    db = plain_optuna(tmp_path / "plain.db")
    tables = existing_tables(f"sqlite:///{db}")
    before = snapshot(tmp_path)
    out = ["--out", str(tmp_path / "student.pt")] if argv[0] == "export" else []
    one_line_exit_2(capsys, [*argv, "--storage", str(db), *out], message)
    assert snapshot(tmp_path) == before
    assert existing_tables(f"sqlite:///{db}") == tables and not any(
        name.startswith("nas_") for name in tables)


def test_report_on_an_empty_postgresql_database_creates_no_table(
        capsys: pytest.CaptureFixture[str], postgres_db: str) -> None:  # noqa: F811
    one_line_exit_2(capsys, ["report", "--storage", postgres_db], "holds no nas study")
    one_line_exit_2(capsys, ["export", "best", "--storage", postgres_db], "holds no nas study")
    assert existing_tables(postgres_db) == set()


@pytest.mark.parametrize("storage", ["sqlite://", "sqlite:///:memory:"])
@pytest.mark.parametrize("command", [["report"], ["export", "best"], ["search", "--space", TINY]])
def test_a_database_url_without_a_file_is_refused(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        storage: str, command: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    quiet = [] if command[0] == "report" else ["--quiet"]
    one_line_exit_2(capsys, [*command, "--storage", storage, *quiet],
                    f"{storage}: names no database file")
    assert list(tmp_path.iterdir()) == []


def test_a_600_character_study_name_is_refused_before_postgresql_is_touched(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        postgres_db: str) -> None:  # noqa: F811
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    one_line_exit_2(capsys, ["search", "--space", TINY, "--storage", postgres_db, "--quiet",
                             "--study", "s" * 600],
                    "--study must be 1 to 512 characters, got 600 characters")
    assert existing_tables(postgres_db) == set()
    engine = sa.create_engine(postgres_db)
    with engine.connect() as connection:          # the database still answers, untouched
        assert connection.execute(sa.text("SELECT 1")).scalar() == 1
    engine.dispose()


def test_a_search_refused_after_opening_the_database_leaves_no_file(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The budget is checked against the data, so after the database is opened: the file
    it created, holding empty tables only, goes again."""
    from tests.conftest import make_image_folder

    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    folder = make_image_folder(tmp_path / "digits", 2, 6, 2, "d")
    db = tmp_path / "new.db"
    one_line_exit_2(capsys, ["search", "--space", TINY, "--data", str(folder), "--image-size", "8x8",
                             "--storage", str(db), "--quiet", "--budget-flops", "1K"],
                    "below the smallest genome")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("new.db")] == []


def test_an_existing_database_is_never_removed(tmp_path: Path) -> None:
    from nas.store.database import new_sqlite_file, remove_unused
    from nas.store.runs import Store

    db = tmp_path / "kept.db"
    assert new_sqlite_file(str(db)) == db
    Store(str(db)).close()
    assert new_sqlite_file(str(db)) is None
    store = Store(str(db))
    store.put_blob("k", b"v")
    store.close()
    assert not remove_unused(db) and db.exists()                     # holds a row: kept
