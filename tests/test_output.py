"""What the CLI prints: one number format, whole lines in files, durations that say what they
measure, plurals, no budget talk without a budget, every trial of a run accounted for, ablation
tables that fit, and a plot whose axis is set by its points (issue 24, findings 7 and 8)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from nas.cli import main
from nas.errors import SpaceError
from nas.model.space import load_space
from nas.study.report.plot import draw_front
from nas.study.report.summary import load_study_summary
from nas.study.search.budget import Budget
from nas.study.search.loop import default_study_name
from nas.units import count_text, duration_text, label_text, parse_duration, parse_quantity, plural
from tests.studies import add_trial, new_study

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "nas" / "search_spaces" / "tiny.toml"
DIGITS = ["--data", "digits", "--image-size", "8x8", "--epochs", "1", "--threads", "1"]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))


# ----------------------------------------------------------------- the one number format


@pytest.mark.parametrize(("value", "short", "exact"), [
    (95, "95", "95"), (950, "950", "950"), (1000, "1.00 K", "1.00 K (1,000)"),
    (95_552, "95.6 K", "95.6 K (95,552)"), (135_040, "0.135 M", "0.135 M (135,040)"),
    (1_296_000, "1.30 M", "1.30 M (1,296,000)"), (2e8, "0.200 G", "0.200 G (200,000,000)"),
    (17_034_427_776, "17.0 G", "17.0 G (17,034,427,776)"),
])
def test_counts_print_one_way(value: float, short: str, exact: str) -> None:
    assert (count_text(value), count_text(value, exact=True)) == (short, exact)


def test_a_budget_names_its_study_as_it_is_written_in_any_spelling() -> None:
    assert {label_text(parse_quantity(t, "x")) for t in ("0.2G", "200M", "200000K", "2e8")} == {"0.2G"}
    assert [label_text(v) for v in (4e4, 5e4, 1.5e9, 123_456)] == ["40K", "50K", "1.5G", "0.123456M"]
    name = default_study_name(load_space(str(TINY)), "digits", (8, 8), Budget({"flops": 2e8}))
    assert name == "tiny-digits-8x8-f0.2G"


def test_a_duration_reads_as_one_unit_or_as_parts_and_as_nas_prints_it() -> None:
    """`--time`, `--timeout`, `--retrain-time` and `[search] timeout`: `4m30s` and `1h 30m` as
    well as `30m` and `600`; every duration nas prints reads back (to its printed minute or
    second); a part out of order, twice, or without its unit is refused in one line."""
    assert [parse_duration(t, "x") for t in ("30m", "2h", "90s", "600", "1.5h")] == [
        1800, 7200, 90, 600, 5400]
    assert [parse_duration(t, "x") for t in ("4m30s", "1h 30m", " 1H30M15S ", "2h 0.5m")] == [
        270, 5400, 5415, 7230]
    for seconds in (75, 571, 3599, 3660, 7320):
        assert parse_duration(duration_text(seconds), "x") == seconds
    for text in ("30s4m", "4m4m", "4m30", "4m 30x", "0m0s", "4m-30s", "soon", ""):
        with pytest.raises(SpaceError, match=r"^--timeout must be a positive duration such as "
                                             r"30m, 2h, 90s or 4m30s, got "):
            parse_duration(text, "--timeout")


def test_plural() -> None:
    assert [plural(n, "epoch") for n in (0, 1, 2, 1000)] == ["0 epochs", "1 epoch", "2 epochs",
                                                               "1,000 epochs"]
    assert (plural(1, "class", "classes"), plural(3, "class", "classes")) == ("1 class", "3 classes")
    assert plural(None, "thread") == "? threads"


def test_the_summary_says_which_share_of_the_sampled_genomes_the_budget_rejected() -> None:
    """The README: the summary line says which share of this run's sampled genomes the budget
    rejected, and why there are more trials than --trials."""
    from nas.cli.search import _run_text
    from nas.study.search.loop import SearchSettings
    from nas.study.search.tally import Tally

    settings = SearchSettings(study="s", trials=3, epochs=1, budget=Budget({"flops": 2e5}))
    text = _run_text(Tally(trained=3, rejected=1), 4, settings)
    assert text == ("4 trials: 3 trained, 1 rejected over budget (25.0 %, not trained); "
                    "--trials 3 counts the genomes judged (trained or pruned)")


# ----------------------------------------------------------------- a real search, piped


def nas_process(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`nas ARGV` in a real process whose stdout and stderr are pipes (no COLUMNS set)."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["PYTHONPATH"] = str(ROOT)
    program = "import sys; from nas.cli import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", program, *argv], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=600)


def test_a_piped_search_prints_whole_lines_and_one_set_of_times(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    run = nas_process("search", "--space", str(TINY), *DIGITS, "--trials", "2",
                      "--budget-flops", "0.2G", "--storage", url, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    out, err = run.stdout, run.stderr
    assert "…" not in out + err                              # nothing cut at 80 columns
    assert all(line == line.rstrip() for line in out.splitlines())      # no padding
    assert "training 2 genomes, 1 epoch each" in err
    search = next(line for line in err.splitlines() if line.startswith("search"))
    assert re.search(r"2/2 best [\d.]+ % [][\d, ]+ \| front \d \| rejected 0 \| reused 0 \| failed 0 ",
                     search), search
    fields = dict(line.split(None, 1) for line in out.splitlines())
    assert fields["study"].startswith("tiny-digits-8x8-f0.2G ")
    assert fields["this"] == "run  2 trials: 2 trained, 0 rejected over budget (0.0 %, not trained)"
    assert re.fullmatch(r"([\d.]+ s) in trials \(summed\), [\d.]+ s wall for the whole run "
                        r"\(data, teacher and trials\)", fields["time"])
    assert re.search(r"^best +[][\d, ]+ \w+: val [\d.]+ %, [\d.]+ K \([\d,]+\) FLOPs \(trial \d\)$", out,
                     re.M)
    summed = fields["time"].split(" in trials")[0]
    assert main(["report", "--storage", url, "--study", "tiny-digits-8x8-f0.2G"]) == 0
    report = capsys.readouterr().out
    assert f"time     {summed} in trials (summed), " in report      # the same trials, the same sum
    assert "budget   FLOPs <= 0.200 G (200,000,000)" in report
    assert "1 epoch a trial" in report


def test_a_bar_that_stops_short_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    from nas.cli.console import ProgressView
    from nas.train.distill import EpochStats

    with ProgressView() as view:
        on_epoch = view.epochs("teacher")
        for epoch, val in ((5, 0.99), (6, 1.0)):    # train() returns after the perfect epoch
            on_epoch(EpochStats(epoch, 12, 0.03, val, 0.01, 1.0))
    line = capsys.readouterr().err.splitlines()[-1]
    assert "6/12" in line and "(stopped: every validation image right after epoch 6)" in line
    with ProgressView() as view:                    # a perfect last epoch is no early stop
        view.epochs("teacher")(EpochStats(12, 12, 0.03, 1.0, 0.01, 1.0))
    assert "stopped" not in capsys.readouterr().err


# ----------------------------------------------------------------- no budget, every trial counted

TWO_GENOMES = """name = "two"
[model]
stem = 8
head = 32
[attention]
choices = ["eca", "none"]
[[stage]]
t = 1
c = 8
n = 1
s = 2
fused = 0
[train]
epochs = 1
batch_size = 64
[teacher]
genome = "[1,8,1,2,0]"
attention = "eca"
epochs = 1
"""


def test_a_run_accounts_for_every_trial_and_says_nothing_of_a_budget_it_has_not(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A space of two genomes: the second run samples the first genome again. The summary counts
    the reused trial and says why the study holds more trials than --trials."""
    space = tmp_path / "two.toml"
    space.write_text(TWO_GENOMES)
    url = f"sqlite:///{tmp_path / 's.db'}"
    argv = ["search", "--space", str(space), *DIGITS, "--storage", url, "--sampler", "random"]
    assert main([*argv, "--trials", "1", "--seed", "0"]) == 0
    first = capsys.readouterr()
    assert "this run  1 trial: 1 trained\n" in first.out
    assert "rejected" not in first.out + first.err                # no budget: no rejections
    assert main([*argv, "--trials", "1", "--seed", "1"]) == 0    # draws the first genome again
    out = capsys.readouterr().out
    trials = optuna.load_study(study_name="two-digits-8x8-nobudget", storage=url).trials
    outcomes = [t.user_attrs["outcome"] for t in trials]
    assert outcomes.count("trained") == 2 and outcomes.count("reused") >= 1
    assert (f"this run  {len(trials) - 1} trials: 1 trained, {outcomes.count('reused')} reused "
            "(sampled again: the study's result, not trained again); --trials 1 counts the "
            "genomes judged (trained or pruned)") in out
    assert main(["report", "--storage", url]) == 0
    report = capsys.readouterr().out
    assert "rejected" not in report and "budget   none" in report


# ----------------------------------------------------------------- the ablation table

ABLATION = """name = "t"
space = "{space}"
data = "digits"
image_size = "8x8"
epochs = 1
seeds = [0]

[[group]]
name = "attention"
genome = "[1,8,1,1,0]"

[[group.arm]]
name = "eca"
attention = "eca"

[[group.arm]]
name = "none"
attention = "none"
distill.loss = "none"
"""


def test_the_ablation_table_fits_the_terminal_and_says_what_it_hid(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from nas.cli.console import console

    path = tmp_path / "ab.toml"
    path.write_text(ABLATION.format(space=TINY))
    argv = ["ablate", str(path), "--storage", f"sqlite:///{tmp_path / 'a.db'}", "--quiet",
            "--threads", "1"]
    monkeypatch.setattr(console, "_width", 80)
    assert main(argv) == 0
    narrow = capsys.readouterr().out
    table = [line for line in narrow.splitlines() if line.startswith(("┃", "│", "┏", "└"))]
    assert table and max(len(line) for line in table) <= 80
    header = [cell.strip() for cell in table[1].strip("┃").split("┃")]
    assert header == ["arm", "genome", "changes", "val acc", "Δ val [95% CI]"]
    assert "…" not in narrow
    assert ("(columns attn, FLOPs, params, seeds, test acc, Δ test [95% CI], front, s/run hidden: "
            "widen the terminal or use --format csv)") in " ".join(narrow.split())
    monkeypatch.setattr(console, "_width", 200)
    assert main([*argv, "--no-train"]) == 0
    wide = capsys.readouterr().out
    assert "hidden" not in wide and "Δ test [95% CI]" in wide and "s/run" in wide
    assert re.search(r"│ eca +│ \[1,8,1,1,0\] │ eca +│ - +│ +[\d.]+ K │ +[\d.]+ K │ +1 │", wide)


# ----------------------------------------------------------------- the plot


def _plotted(tmp_path: Path, budget: float) -> tuple[object, list[str]]:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    study = new_study(url, "p", budget_flops=budget)
    for i, flops in enumerate((20_000, 26_000, 41_000, 60_000)):
        add_trial(study, f"[1,{8 * (i + 1)},1,1,0]", flops, 1000 + 500 * i, val=0.2 + 0.1 * i,
                  test=0.3, run_id=i + 1)
    axes = draw_front(load_study_summary(url, "p")).axes[0]
    axes.figure.canvas.draw()
    return axes, [t.get_text() for t in axes.get_legend().get_texts()]


def test_a_far_budget_leaves_the_axis_to_the_points(tmp_path: Path) -> None:
    axes, legend = _plotted(tmp_path, 2e8)
    low, high = axes.get_xlim()
    assert 0 < low < 20_000 and 60_000 < high < 100_000           # not squeezed against 0..2e8
    assert "budget 0.200 G FLOPs (beyond the axis)" in legend
    labels = [t.get_text() for t in axes.get_xticklabels() if t.get_text()]
    assert labels and all(re.fullmatch(r"[\d.]+ K", text) for text in labels), labels
    assert axes.xaxis.get_offset_text().get_text() == ""          # no `1e8` under the axis


def test_a_near_budget_is_drawn_within_the_axis(tmp_path: Path) -> None:
    axes, legend = _plotted(tmp_path, 90_000)
    assert "budget 90.0 K FLOPs" in legend
    assert [line.get_xdata()[0] for line in axes.lines] == [90_000]
    assert axes.get_xlim()[1] > 90_000
