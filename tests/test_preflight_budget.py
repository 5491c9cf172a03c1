"""The budget preflight (nas.study.search.budget) that `nas search` and `nas.search` share: limits read
from flags, arguments or the space's [search] keys by one rule, and a budget that no genome of
the space meets refused in the same line by both, before the teacher trains."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import nas
from nas.cli import main
from nas.errors import SpaceError
from nas.model.recipe import SearchConfig
from nas.study.search.budget import Budget, budget_from
from nas.study.search.objective import budget_of
from tests.conftest import make_image_folder

TIMED = ("accuracy", "flops", "latency")


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "digits4", 4, 24, 8, "d")


def test_limits_come_from_the_given_values_then_the_space_file() -> None:
    conf = SearchConfig(objectives=TIMED, budget_flops="0.2G", budget_latency="2ms")
    assert budget_from({"flops": "1M"}, TIMED, conf) == Budget({"flops": 1e6, "latency": 2.0},
                                                               ("flops", "params", "latency"))
    assert budget_from({"flops": "", "params": None}, TIMED, conf).limits == {"flops": 2e8,
                                                                              "latency": 2.0}
    assert budget_of(None, "50K", TIMED, conf).limits == {"flops": 2e8, "params": 5e4,
                                                          "latency": 2.0}
    assert budget_of(1000, None) == Budget({"flops": 1000.0})       # numbers as well as text


@pytest.mark.parametrize(("call", "message"), [
    (lambda: budget_from({"flops": "lots"}, TIMED), "--budget-flops must be a positive number"),
    (lambda: budget_of("lots", None), "budget must be a positive number"),
    (lambda: budget_of(None, "-1"), "budget_params must be a positive number"),
    (lambda: budget_from({"latency": "fast"}, TIMED), "--budget-latency must be a positive time"),
    (lambda: budget_from({"latency": "2ms"}, ("accuracy", "flops")),
     "--budget-latency needs latency among the objectives"),
    (lambda: budget_of(None, None, conf=SearchConfig(budget_latency="2ms")),
     "--budget-latency needs latency among the objectives"),
])
def test_bad_limits_are_one_line_naming_the_argument(call: object, message: str) -> None:
    with pytest.raises(SpaceError, match=message) as error:
        call()  # type: ignore[operator]
    assert "\n" not in str(error.value)


def teachers(db: Path) -> int:
    """The teachers stored in `db` (0 when the file was never created)."""
    if not db.exists():
        return 0
    with sqlite3.connect(db) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        if "nas_teachers" not in tables:
            return 0
        return connection.execute("SELECT count(*) FROM nas_teachers").fetchone()[0]


def test_the_cli_and_the_api_refuse_a_budget_below_every_genome_alike(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, folder: Path) -> None:
    """tiny.toml trains a teacher: the refusal comes before it, from the same check."""
    code = main(["search", "--space", "tiny.toml", "--data", str(folder), "--image-size", "8x8",
                 "--storage", f"sqlite:///{tmp_path / 'cli.db'}", "--budget-flops", "1000",
                 "--quiet"])
    line = capsys.readouterr().err.strip()
    assert code == 2 and len(line.splitlines()) == 1
    api_db = tmp_path / "api.db"
    with pytest.raises(SpaceError) as error:
        nas.search("tiny.toml", data=str(folder), image_size="8x8", budget="1000",
                   storage=f"sqlite:///{api_db}", device="cpu")
    message = str(error.value)
    assert message.startswith("budget of 1.00 K (1,000) FLOPs is below the smallest genome of ")
    assert " at 3x8x8: " in message and line == f"nas: error: {message}"
    assert teachers(tmp_path / "cli.db") == teachers(api_db) == 0


def test_the_api_reads_the_spaces_objectives_and_latency_budget(tmp_path: Path,
                                                                 folder: Path) -> None:
    """A study of accuracy, FLOPs and latency from the space's [search] keys, as `nas search`
    would make it: a latency budget below every genome is refused, one above is a study whose
    metrics are the three objectives."""
    timed = {"search.objectives": list(TIMED), "distill.loss": "none"}
    url = f"sqlite:///{tmp_path / 's.db'}"
    with pytest.raises(SpaceError, match="latency is below the smallest genome of "):
        nas.search("tiny.toml", data=str(folder), image_size="8x8", storage=url, device="cpu",
                   recipe={**timed, "search.budget_latency": "1us"})
    found = nas.search("tiny.toml", data=str(folder), image_size="8x8", storage=url, trials=1,
                       epochs=1, device="cpu", recipe={**timed, "search.budget_latency": "10s"})
    assert found.study.metric_names == ["val_accuracy", "flops", "latency_ms"]
    assert found.study.study_name.endswith("-l10000ms-flops-latency")
    assert found.study.user_attrs["nas"]["objectives"] == list(TIMED)
    assert [row.trial for row in found.front] == [0]
    assert found.front[0].latency_ms == pytest.approx(found.study.trials[0].values[2])
