"""nas report: the feasible Pareto front, totals, study listing, JSON, plot and errors.

Studies are written by hand the way nas/search.py writes them (tests/studies.py),
into a real SQLite file; no training happens here.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from nas.cli import main
from nas.errors import ReportError, StoreError
from nas.model.objectives import DEFAULT_OBJECTIVES, dominates, select
from nas.study.pareto import TrialRow, pareto_front
from nas.study.report.summary import StudyData, list_studies, load_study_summary, summarize
from tests.studies import add_trial, new_study

A, B, C = "[1,8,1,1,0]", "[2,8,1,1,0]", "[2,16,1,1,0]"
E, H, J = "[1,16,1,2,0]", "[2,8,1,2,1]", "[1,8,1,2,0]"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite file, four studies: `alpha` (the worked example), `beta`, `empty`, `over`."""
    path = tmp_path_factory.mktemp("report") / "studies.db"
    url = f"sqlite:///{path}"
    alpha = new_study(url, "alpha", budget_flops=1000)
    add_trial(alpha, A, 500, 50, val=0.5, test=0.45, run_id=1)           # 0 front
    add_trial(alpha, B, 800, 40, val=0.7, test=0.65, run_id=2)           # 1 front
    add_trial(alpha, C, 900, 90, val=0.6, test=0.6, run_id=3)            # 2 dominated by 1
    add_trial(alpha, "[4,16,2,1,0]", 1500, 30, val=0.9, outcome="rejected")  # 3 over budget
    add_trial(alpha, B, 800, 40, val=0.7, test=0.65, outcome="reused", run_id=2)  # 4 = trial 1
    add_trial(alpha, E, 400, 100, val=0.5, test=0.5, run_id=4)           # 5 front
    add_trial(alpha, "[1,8,2,1,0]", 700, 60, outcome="nan", run_id=5)    # 6 FAIL
    add_trial(alpha, "[1,8,2,2,0]", 600, 60, outcome="failed")           # 7 FAIL
    add_trial(alpha, H, 950, 20, val=0.65, test=0.7, run_id=6)           # 8 front
    add_trial(alpha, J, 500, 50, val=0.5, test=0.4, attention="none", run_id=7)  # 9 front (ties 0)
    beta = new_study(url, "beta")
    add_trial(beta, A, 500, 50, val=0.8, test=0.75, run_id=8)
    new_study(url, "empty")
    over = new_study(url, "over", budget_params=10)
    add_trial(over, A, 500, 50, outcome="rejected")
    return url


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def row(trial: int, val: float, flops: int, params: int, *, genome: str | None = None,
        outcome: str = "trained", constraint: tuple[float, ...] = (0.0, 0.0)) -> TrialRow:
    return TrialRow(trial, "COMPLETE", outcome, genome or f"[1,{8 * (trial + 1)},1,1,0]", "eca",
                    flops, params, val, None, trial, constraint, 1.0)


# ----------------------------------------------------------------- the front


def test_worked_example_gives_the_exact_front(url: str) -> None:
    summary = load_study_summary(url, "alpha")
    assert [r.trial for r in summary.front] == [5, 0, 9, 1, 8]      # by FLOPs, then params, trial
    assert [r.flops for r in summary.front] == [400, 500, 500, 800, 950]
    assert summary.front[3].test_accuracy == 0.65 and summary.front[3].outcome == "trained"
    assert summary.teacher == {"fingerprint": "f00d", "val_accuracy": 0.9, "test_accuracy": 0.875}


def test_totals_count_every_outcome(url: str) -> None:
    totals = load_study_summary(url, "alpha").totals
    assert (totals.trials, totals.done, totals.trained, totals.reused, totals.rejected,
            totals.failed, totals.running) == (10, 10, 6, 1, 1, 2, 0)
    assert totals.seconds == pytest.approx(10.0)
    assert totals.wall_seconds >= 0


@pytest.mark.parametrize(("flops", "params", "expected"), [
    (600, None, [5, 0, 9]), (None, 45, [1, 8]), (850, 45, [1]), (1e9, 1e9, [5, 0, 9, 1, 8]),
])
def test_a_tighter_budget_filters_without_retraining(url: str, flops: float | None,
                                                     params: float | None, expected: list[int]) -> None:
    limits = {k: v for k, v in (("flops", flops), ("params", params)) if v is not None}
    summary = load_study_summary(url, "alpha", limits)
    assert [r.trial for r in summary.front] == expected


def test_a_budget_nothing_fits_is_an_error(url: str) -> None:
    with pytest.raises(ReportError, match=r"fits --budget-flops 100: the smallest have 400 FLOPs"):
        load_study_summary(url, "alpha", {"flops": 100})


def test_a_trained_trial_over_the_study_budget_is_not_on_the_front() -> None:
    rows = (row(0, 0.5, 100, 10), row(1, 0.9, 90, 9, constraint=(5.0, 0.0)),
            row(2, 0.9, 90, 9, outcome="rejected", constraint=(5.0, 0.0)))
    summary = summarize(StudyData("s", "sqlite://", {}, rows, 0.0))
    assert [r.trial for r in summary.front] == [0]


def beats(a: TrialRow, b: TrialRow) -> bool:
    objectives = select(DEFAULT_OBJECTIVES)
    return dominates(a.point(objectives), b.point(objectives), objectives)


trial_rows = st.lists(st.tuples(st.integers(0, 5), st.integers(1, 6), st.integers(1, 6),
                                st.booleans(), st.sampled_from(["trained", "reused", "rejected"])),
                      min_size=1, max_size=25)


@settings(max_examples=60, deadline=None)
@given(trial_rows, st.none() | st.integers(1, 6))
def test_front_is_feasible_non_dominated_and_covers_the_rest(
        raw: list[tuple[int, int, int, bool, str]], budget: int | None) -> None:
    rows = tuple(row(i, v / 5, f, p, genome=f"g{v}-{f}-{p}-{over}", outcome=outcome,  # reuse: same result
                     constraint=(1.0 if over or outcome == "rejected" else 0.0, 0.0))
                 for i, (v, f, p, over, outcome) in enumerate(raw))
    data = StudyData("s", "sqlite://", {}, rows, 0.0)
    limits = {} if budget is None else {"flops": budget}
    fitting = [r for r in rows if r.trained and r.fits(limits)]
    if not fitting:
        with pytest.raises(ReportError):
            summarize(data, limits)
        return
    front = summarize(data, limits).front
    assert all(r.trained and r.fits(limits) for r in front)
    assert not any(beats(a, b) for a in front for b in front)
    assert len({(r.genome, r.attention) for r in front}) == len(front)
    for other in fitting:
        assert any(beats(f, other) or (f.val_accuracy, f.flops, f.params)
                   == (other.val_accuracy, other.flops, other.params) for f in front)


def test_pareto_front_keeps_equal_rows_and_sorts_by_flops() -> None:
    rows = [row(0, 0.5, 30, 3), row(1, 0.5, 30, 3), row(2, 0.9, 50, 5), row(3, 0.4, 60, 6)]
    assert [r.trial for r in pareto_front(rows)] == [0, 1, 2]


# ----------------------------------------------------------------- studies


def test_list_studies_counts_trials_and_best_accuracy(url: str) -> None:
    studies = {s.name: s for s in list_studies(url)}
    assert sorted(studies) == ["alpha", "beta", "empty", "over"]
    assert (studies["alpha"].trials, studies["alpha"].trained) == (10, 6)
    assert studies["alpha"].best_val_accuracy == 0.7
    assert studies["empty"].best_val_accuracy is None


def test_several_studies_without_a_name_are_listed(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "report", "--storage", url)
    assert code == 0
    assert all(name in out for name in ("alpha", "beta", "empty", "over", "70.0 %"))
    code, out, _ = run_cli(capsys, "report", "--storage", url, "--json")
    listed = json.loads(out)
    assert [s["name"] for s in listed["studies"]] == ["alpha", "beta", "empty", "over"]
    assert listed["studies"][1] == {"name": "beta", "trials": 1, "trained": 1,
                                    "best_val_accuracy": 0.8}


def test_the_only_study_is_used_without_a_name(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    add_trial(new_study(url, "solo"), A, 123_456_789, 10_754, val=0.75, test=0.792, run_id=1)
    code, out, _ = run_cli(capsys, "report", "--storage", url)
    assert code == 0
    for text in ("solo", "[1,8,1,1,0]", "0.123 G", "(123,456,789)", "10.8 K", "(10,754)", "75.0 %", "79.2 %",
                 "87.5 %", "1 trained"):
        assert text in out, text


# ----------------------------------------------------------------- CLI output


def test_json_is_one_object_with_the_front(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "report", "--storage", url, "--study", "alpha", "--json",
                             "--budget-flops", "0.6K")
    assert code == 0 and err == ""
    report = json.loads(out)
    assert report["study"] == "alpha"
    assert report["budget"] == {"study_flops": 1000, "study_params": None, "flops": 600.0,
                                "params": None}
    assert report["teacher"]["test_accuracy"] == 0.875
    assert report["totals"]["trained"] == 6 and report["totals"]["rejected"] == 1
    assert report["front"][0] == {"trial": 5, "genome": E, "attention": "eca", "flops": 400,
                                  "params": 100, "val_accuracy": 0.5, "test_accuracy": 0.5,
                                  "outcome": "trained", "run_id": 4}
    assert [r["trial"] for r in report["front"]] == [5, 0, 9]


def test_text_report_shows_teacher_totals_and_table(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "report", "--storage", url, "--study", "alpha")
    assert code == 0
    for text in ("teacher", "90.0 %", "87.5 %", "10 done of 10: 6 trained, 1 reused, 1 rejected",
                 "2 failed", "FLOPs <= 1.00 K (1,000)", E, H, "400", "950"):
        assert text in out, text
    assert C not in out                    # dominated
    assert "[4,16,2,1,0]" not in out       # rejected


def test_report_warns_when_the_teacher_is_not_above_the_best_student(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'weak.db'}"
    study = new_study(url, "weak", teacher={"fingerprint": "f00d", "val_accuracy": 0.7,
                                            "test_accuracy": 0.7})
    add_trial(study, A, 100, 10, val=0.75, test=0.7, run_id=1)
    code, out, _ = run_cli(capsys, "report", "--storage", url)
    assert code == 0
    assert ("the teacher's val accuracy (70.0 %) is not above the best student's (75.0 %)"
            in " ".join(out.split()))       # rich wraps the line to the terminal


def test_json_keeps_its_shape_through_format_json(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, alias, _ = run_cli(capsys, "report", "--storage", url, "--study", "alpha", "--json")
    _, formatted, _ = run_cli(capsys, "report", "--storage", url, "--study", "alpha", "--format", "json")
    assert json.loads(alias) == json.loads(formatted) and "trials" not in json.loads(alias)
    code, out, err = run_cli(capsys, "report", "--storage", url, "--study", "alpha", "--json",
                             "--format", "csv")
    assert code == 2 and out == "" and "--json is --format json" in err


FRONT = [5, 0, 9, 1, 8]
HEADER = ["trial", "genome", "attention", "flops", "params", "val_accuracy", "test_accuracy"]


def test_csv_parses_back_to_the_front(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "report", "--storage", url, "--study", "alpha", "--format", "csv")
    assert code == 0 and err == ""
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == HEADER
    assert [int(r["trial"]) for r in rows] == FRONT
    assert rows[0] == {"trial": "5", "genome": E, "attention": "eca", "flops": "400", "params": "100",
                       "val_accuracy": "0.5", "test_accuracy": "0.5"}


def test_csv_all_lists_every_trial_with_its_outcome(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(capsys, "report", "--storage", url, "--study", "alpha", "--format", "csv", "--all")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [int(r["trial"]) for r in rows] == list(range(10))
    assert [r["outcome"] for r in rows] == ["trained", "trained", "trained", "rejected", "reused",
                                            "trained", "nan", "failed", "trained", "trained"]
    assert [int(r["trial"]) for r in rows if r["on_front"] == "True"] == sorted(FRONT)
    assert rows[3]["val_accuracy"] == "" and rows[3]["flops"] == "1500"    # rejected: never trained


def test_markdown_is_a_pipe_table_of_the_front(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(capsys, "report", "--storage", url, "--study", "alpha", "--format", "markdown")
    lines = out.splitlines()
    assert len(lines) == 2 + len(FRONT) and all(line.startswith("| ") or line.startswith("|-")
                                                 or line.startswith("|:") for line in lines)
    cells = [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]
    assert cells[0] == ["trial", "genome", "attn", "FLOPs", "params", "val acc", "test acc"]
    assert cells[2] == ["5", E, "eca", "400", "100", "50.0 %", "50.0 %"]
    _, out, _ = run_cli(capsys, "report", "--storage", url, "--study", "alpha", "--format", "markdown",
                        "--all")
    assert len(out.splitlines()) == 2 + 10


def test_json_all_adds_every_trial(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(capsys, "report", "--storage", url, "--study", "alpha", "--format", "json", "--all")
    report = json.loads(out)
    assert [r["trial"] for r in report["front"]] == FRONT
    assert [t["trial"] for t in report["trials"]] == list(range(10))
    assert report["trials"][7] == {"trial": 7, "genome": "[1,8,2,2,0]", "attention": "eca", "flops": 600,
                                   "params": 60, "val_accuracy": None, "test_accuracy": None,
                                   "outcome": "failed", "on_front": False, "state": "FAIL",
                                   "run_id": None}


def test_a_narrow_terminal_drops_columns_and_says_which(url: str, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from nas.cli.console import console

    monkeypatch.setattr(console, "_width", 200)
    _, wide, _ = run_cli(capsys, "report", "--storage", url, "--study", "alpha", "--all")
    assert "hidden" not in wide and "outcome" in wide and "rejected" in wide
    monkeypatch.setattr(console, "_width", 62)
    _, narrow, _ = run_cli(capsys, "report", "--storage", url, "--study", "alpha", "--all")
    table = [line for line in narrow.splitlines() if line.startswith(("┃", "│", "┏", "└"))]
    assert table and max(len(line) for line in table) <= 62
    header = [cell.strip() for cell in table[1].strip("┃").split("┃")]
    assert header == ["trial", "genome", "attn", "FLOPs", "params", "val acc"]
    note = " ".join(narrow.split())
    assert "(columns test acc, outcome, front hidden: widen the terminal or use --format csv)" in note
    assert "[2,16,1,1,0]" in narrow and "(1,500)" in narrow    # kept columns are whole, not cut


PNG, PDF = b"\x89PNG\r\n\x1a\n", b"%PDF"


@pytest.mark.parametrize("axes", ["flops-accuracy", "flops-params"])
@pytest.mark.parametrize("suffix", [".png", ".pdf", ".svg"])
def test_plot_writes_the_format_its_extension_names(url: str, tmp_path: Path, suffix: str, axes: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / f"pareto{suffix}"
    code, out, _ = run_cli(capsys, "report", "--storage", url, "--study", "alpha", "--plot", str(path),
                           "--plot-axes", axes, "--budget-flops", "900", "--json")
    assert code == 0 and json.loads(out)["plot"] == str(path)
    data = path.read_bytes()
    if suffix == ".png":
        assert data.startswith(PNG)
        image = Image.open(io.BytesIO(data))
        assert image.info["dpi"][0] >= 199.9 and image.size == (1400, 900)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 18)
        assert colours is not None and len(colours) > 50                     # points, lines, text drawn
        assert any(r > 150 and g < 80 and b < 80 for _, (r, g, b) in colours)   # the red front
    elif suffix == ".pdf":
        assert data.startswith(PDF)
    else:
        assert data.lstrip().startswith((b"<svg", b"<?xml")) and b"<svg" in data[:2000]
        assert b"parameters" in data and b"FLOPs" in data      # both objectives named (axis or colour)


def test_an_unknown_plot_extension_is_one_line(url: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "report", "--storage", url, "--study", "alpha",
                             "--plot", str(tmp_path / "p.gif"))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "p.gif: unknown plot extension '.gif'; use .pdf, .svg, .png" in err
    assert not (tmp_path / "p.gif").exists()


def test_front_labels_do_not_overlap(tmp_path: Path) -> None:
    """Twelve front points crowded into one corner: every label box is clear of the others."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    from nas.study.report.plot import label_front

    front = tuple(row(i, 0.5 + 0.002 * i, 1000 + 3 * i, 100 - i) for i in range(12))
    figure = Figure(figsize=(4, 3), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_xlim(900, 1200)
    axes.set_ylim(40, 60)
    points = [(float(r.flops or 0), 100 * (r.val_accuracy or 0)) for r in front]
    labels = label_front(axes, front, "flops", "accuracy", points)
    renderer = figure.canvas.get_renderer()
    boxes = [Text.get_window_extent(label, renderer) for label in labels]
    assert [label.get_text() for label in labels] == [str(i) for i in range(12)]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b)


# ----------------------------------------------------------------- errors


@pytest.mark.parametrize(("argv", "message"), [
    (["--study", "alpah"], "no study named 'alpah' (did you mean `alpha`?); studies: alpha, beta"),
    (["--study", "empty"], "study 'empty' has no complete trials yet"),
    (["--study", "over"], "study 'over' has no trained trial"),
    (["--study", "alpha", "--budget-params", "5"], "fits --budget-params 5: the smallest"),
    (["--study", "alpha", "--budget-flops", "lots"], "--budget-flops must be a positive number"),
    (["--study", "alpha", "--plot", "/nonexistent/dir/p.png"], "directory /nonexistent/dir does not"),
    (["--format", "csv"], "--format csv shows one study; "),
])
def test_bad_input_is_one_line_and_exit_2(url: str, capsys: pytest.CaptureFixture[str],
                                          argv: list[str], message: str) -> None:
    code, out, err = run_cli(capsys, "report", "--storage", url, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err


def test_missing_or_mistyped_storage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nothing.db"
    code, _, err = run_cli(capsys, "report", "--storage", str(missing))
    assert code == 2 and "no such database file" in err
    assert not missing.exists()
    code, _, err = run_cli(capsys, "report", "--storage", "sqlit:///x.db")
    assert code == 2 and "did you mean `sqlite`" in err
    with pytest.raises(StoreError):
        list_studies(str(missing))


def test_export_needs_a_study_name_when_there_are_several(url: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "export", "--storage", url)
    assert code == 2 and "holds 4 studies (alpha, beta, empty, over); pick one with --study" in err
