"""Study reports: the feasible Pareto front, study totals and the list of studies.

`read_study` turns an Optuna study written by `nas search` (its objectives, by default max val
accuracy, min FLOPs, min params; per-trial user attributes, see nas.study.search.loop) into plain
`TrialRow`s; `summarize` computes the front and totals. `nas.study.report.overview`
draws a `Summary` as tables and a plot; nothing here prints.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from nas.errors import ReportError, StoreError, nearest
from nas.model.objectives import DEFAULT_OBJECTIVES, OBJECTIVES, Objective, before_training
from nas.store.database import (
    existing_tables,
    normalize_url,
    readonly_url,
    refuse_foreign,
    safe_url,
    sqlite_file,
)
from nas.study.pareto import TrialRow, feasible_front, objectives_of, row_from_trial, unique_genomes
from nas.study.storage_errors import optuna_errors

if TYPE_CHECKING:
    import optuna

FAILED = ("nan", "failed", "interrupted")


@dataclass(frozen=True)
class StudyData:
    """A study's name, storage (password masked), `nas` attributes and trials."""

    name: str
    storage: str
    info: dict[str, Any]
    rows: tuple[TrialRow, ...]
    wall_seconds: float

    @property
    def objectives(self) -> tuple[str, ...]:
        """The study's objectives (a study that names none optimises the default three)."""
        return objectives_of(self.info)

    @property
    def budgeted(self) -> tuple[Objective, ...]:
        """The objectives the study can budget (measured before training), in table order."""
        return tuple(o for o in before_training(self.objectives) if o.can_budget)


@dataclass(frozen=True)
class Totals:
    """Counts over all trials; `seconds` sums trial times, `wall_seconds` spans first to last."""

    trials: int
    done: int
    trained: int
    reused: int
    rejected: int
    failed: int
    running: int
    seconds: float
    wall_seconds: float
    pruned_at: dict[int, int] = field(default_factory=dict)     # rung -> trials pruned there


@dataclass(frozen=True)
class Summary:
    """What `nas report` shows: the front under the applied budget, totals, the teacher."""

    data: StudyData
    limits: Mapping[str, float]     # tighter budgets asked for now, by objective name
    front: tuple[TrialRow, ...]
    totals: Totals

    @property
    def teacher(self) -> dict[str, Any] | None:
        """The study's teacher: fingerprint, val and test accuracy."""
        return self.data.info.get("teacher")


@dataclass(frozen=True)
class StudyInfo:
    """One line of the study list."""

    name: str
    trials: int
    trained: int
    best_val_accuracy: float | None


# ----------------------------------------------------------------- reading


def open_readonly(url: str | None) -> optuna.storages.RDBStorage:
    """Optuna's storage at `url` for reading: a database without Optuna's tables (an unrelated
    file, a store that only ran ablations) is refused with nothing created or written."""
    import optuna

    normalized = normalize_url(url)
    if not database_exists(normalized):
        raise StoreError(f"{safe_url(normalized)}: no such database file (run `nas search` first)")
    if "studies" not in existing_tables(normalized):
        raise StoreError(f"{safe_url(normalized)}: holds no nas study (no Optuna tables; "
                         "run `nas search` first)")
    refuse_foreign(normalized)          # a `studies` table of another program's, or of another schema
    with optuna_errors(normalized):             # read-only: no -wal, -shm or journal written
        return optuna.storages.RDBStorage(readonly_url(normalized), skip_table_creation=True)


def nas_study_names(storage: optuna.storages.RDBStorage, asked: str | None = None) -> list[str]:
    """The studies `nas search` made (`nas` attributes and one direction per objective they
    name); asking for one that plain Optuna made, or a storage holding only such studies, is a
    ReportError."""
    where = safe_url(storage.url)
    studies = storage.get_all_studies()
    made = {s.study_name: "nas" in s.user_attrs
            and len(s.directions) == len(objectives_of(s.user_attrs["nas"])) for s in studies}
    if asked is not None and made.get(asked) is False:
        objectives = next(len(s.directions) for s in studies if s.study_name == asked)
        raise ReportError(f"{where}: study {asked!r} was not made by `nas search` ({objectives} "
                          "objective(s), no `nas` attributes); nothing to report")
    others = sorted(name for name, ours in made.items() if not ours)
    if asked is None and others and not any(made.values()):
        raise ReportError(f"{where} holds no nas study, only Optuna studies made otherwise "
                          f"({', '.join(others)})")
    return [name for name, ours in made.items() if ours]


def database_exists(url: str) -> bool:
    """False only for a SQLite URL whose file does not exist (a report never creates one)."""
    path = sqlite_file(url)
    return path is None or path.exists()


def list_studies(url: str | None) -> list[StudyInfo]:
    """Every study in the storage with its trial counts and best validation accuracy."""
    import optuna

    storage = open_readonly(url)
    with optuna_errors(storage.url):
        names = nas_study_names(storage)
        infos = []
        for name in sorted(names):
            with _gone(name, safe_url(storage.url)):
                rows = _rows(optuna.load_study(study_name=name, storage=storage))
            trained = [r for r in rows if r.trained and r.fits()]
            best = max((r.val_accuracy or 0.0 for r in trained), default=None)
            count = sum(1 for r in trained if r.outcome == "trained")
            infos.append(StudyInfo(name, len(rows), count, best))
    return infos


def read_study(url: str | None, name: str | None = None) -> StudyData:
    """Load a study's trials; `name` None picks the storage's only study."""
    import optuna

    storage = open_readonly(url)
    where = safe_url(storage.url)
    with optuna_errors(storage.url):
        names = nas_study_names(storage, name)
        name = _pick(names, name, where)
        with _gone(name, where):
            study = optuna.load_study(study_name=name, storage=storage)
            try:
                rows = _rows(study)
                trials = study.get_trials(deepcopy=False)
                info = dict(study.user_attrs.get("nas", {}))
            except (ValueError, TypeError, AttributeError) as error:
                raise ReportError(f"{where}: {_tampered(name, error)}") from error
    if not any(r.state == "COMPLETE" for r in rows):
        raise ReportError(f"study {name!r} has no complete trials yet ({len(rows)} trials in all)")
    return StudyData(name, where, info, rows, _wall(trials))


@contextmanager
def _gone(name: str, where: str) -> Iterator[None]:
    """Optuna's KeyError for a study that `nas delete` removed since its name was read -> one
    line."""
    try:
        yield
    except KeyError as error:
        raise ReportError(f"{where}: study {name!r} is gone (deleted while read)") from error


def _pick(names: Sequence[str], name: str | None, where: str) -> str:
    """The study asked for, or the only one; errors list what exists."""
    if name is None:
        if len(names) == 1:
            return names[0]
        if not names:
            raise ReportError(f"{where} holds no studies (run `nas search` first)")
        raise ReportError(f"{where} holds {len(names)} studies ({', '.join(sorted(names))}); "
                         "pick one with --study")
    if name not in names:
        known = ", ".join(sorted(names)) or "none"
        raise ReportError(f"{where}: no study named {name!r}{nearest(name, names)}; "
                         f"studies: {known}")
    return name


def _rows(study: optuna.Study) -> tuple[TrialRow, ...]:
    """Every trial of the study as a TrialRow, in trial order."""
    objectives = objectives_of(study.user_attrs.get("nas") or {})
    try:
        return tuple(row_from_trial(t, objectives) for t in study.get_trials(deepcopy=False))
    except (ValueError, TypeError, AttributeError) as error:
        raise ReportError(_tampered(study.study_name, error)) from error


def _tampered(name: str, error: Exception) -> str:
    return (f"study {name!r} holds attributes that nas did not write "
            f"({type(error).__name__}: {error}); edited by hand?")


def _wall(trials: Sequence[optuna.trial.FrozenTrial]) -> float:
    """Seconds from the first trial's start to the last one's end."""
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    ends = [t.datetime_complete for t in trials if t.datetime_complete is not None]
    return (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0


# ----------------------------------------------------------------- front and totals


def load_study_summary(url: str | None, study: str | None = None,
                       limits: Mapping[str, float] | None = None) -> Summary:
    """The feasible Pareto front and totals of a study, under optional tighter budgets."""
    return summarize(read_study(url, study), limits)


def summarize(data: StudyData, limits: Mapping[str, float] | None = None) -> Summary:
    """Front of the trained genomes within budget; ReportError when none fits. A limit on an
    objective the study did not measure is refused."""
    limits = dict(limits or {})
    budgeted = [o.name for o in data.budgeted]
    for name in limits:
        if name not in budgeted:
            raise ReportError(f"{OBJECTIVES[name].flag}: study {data.name!r} did not measure "
                              f"{name} (its objectives: {','.join(data.objectives)})")
    front = feasible_front(data.rows, data.objectives, limits)
    if not front:
        trained = unique_genomes([r for r in data.rows if r.trained])
        raise ReportError(_nothing_fits(data, trained, limits))
    return Summary(data, limits, tuple(front), totals(data.rows, data.wall_seconds))


def _nothing_fits(data: StudyData, trained: Sequence[TrialRow], limits: Mapping[str, float]) -> str:
    """Why nothing is left to show, with the smallest trained values for a hint."""
    if not trained:
        return (f"study {data.name!r} has no trained trial (all complete trials were rejected by "
                "its budget)")
    asked = " and ".join(f"{OBJECTIVES[name].flag} {OBJECTIVES[name].limit_text(limit)}"
                         for name, limit in limits.items())
    least = " and ".join(f"{o.limit_text(min(r.value(o) or 0.0 for r in trained))} {o.title}"
                         for o in data.budgeted)
    return f"no trained trial of study {data.name!r} fits {asked or 'its budget'}: the smallest have {least}"


def totals(rows: Sequence[TrialRow], wall_seconds: float = 0.0) -> Totals:
    """Counts by outcome; a FAIL trial without an outcome counts as failed."""
    outcomes = [r.outcome for r in rows]
    failed = sum(1 for r in rows if r.outcome in FAILED or (r.state == "FAIL" and r.outcome is None))
    return Totals(
        trials=len(rows), done=sum(1 for r in rows if r.state in ("COMPLETE", "FAIL", "PRUNED")),
        trained=outcomes.count("trained"), reused=outcomes.count("reused"),
        rejected=outcomes.count("rejected"), failed=failed,
        running=sum(1 for r in rows if r.state in ("RUNNING", "WAITING")),
        seconds=sum(r.seconds or 0.0 for r in rows), wall_seconds=wall_seconds,
        pruned_at=dict(sorted(Counter(r.rung for r in rows
                                      if r.outcome == "pruned" and r.rung).items())),
    )


def summary_json(summary: Summary) -> dict[str, Any]:
    """The machine-readable report: study, budgets, teacher, totals and the front."""
    info, data = summary.data.info, summary.data
    study = {f"study_{o.name}": info.get(o.budget_key) for o in data.budgeted}
    return {
        "study": data.name, "storage": data.storage,
        "space": info.get("space"), "data": info.get("data"), "image_size": info.get("image_size"),
        **({"objectives": list(data.objectives)} if data.objectives != DEFAULT_OBJECTIVES else {}),
        **({"latency": info["latency"]} if "latency" in info else {}),
        "budget": {**study, **{o.name: summary.limits.get(o.name) for o in data.budgeted}},
        "teacher": summary.teacher, "totals": asdict(summary.totals),
        "front": [row.to_json() for row in summary.front],
    }
