"""`nas count` and `nas space`: JSON field by field, text output, exit code 2 on bad input."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nas.cli import main
from nas.model.complexity import count
from nas.model.genome import Genome, StageGene
from nas.model.space import InputShape, Space, load_space

ROOT = Path(__file__).resolve().parents[2]
SPACES = ROOT / "nas" / "search_spaces"
REPORT = "[2,8,6,1,0] [2,16,4,1,0]"
FIVE_STAGES = " ".join(["[1,8,1,1,0]"] * 5)
REPORT_INPUT = ("--image-size", "185x160", "--classes", "2")   # the report's photos


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main([*argv, "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return json.loads(out)


def run_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run a failing command; return its one-line error message."""
    assert main(list(argv)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("nas: error: ") and err.endswith("\n") and err.count("\n") == 1
    assert "Traceback" not in err
    return err


def all_genomes(space: Space) -> list[Genome]:
    """Brute-force enumeration of every genome of a space."""
    per_stage = [[StageGene(*g) for g in itertools.product(st.t, st.c, st.n, st.s, st.fused)]
                 for st in space.stages]
    return [Genome(stages, attention)
            for depth in range(space.min_stages, len(space.stages) + 1)
            for stages in itertools.product(*per_stage[:depth])
            for attention in space.attention]


# --- nas count -------------------------------------------------------------------------------

def test_count_json_report_row(capsys: pytest.CaptureFixture[str]) -> None:
    row = run_json(capsys, "count", REPORT, *REPORT_INPUT)
    assert row == {
        "genome": REPORT, "attention": "eca", "flops": 180_348_032, "params": 10_754,
        "input": "3x185x160", "classes": 2, "assumed": [], "built": REPORT, "space": "seed.toml",
        "in_space": True,
    }


def test_count_and_space_default_to_the_default_data_and_say_so(capsys: pytest.CaptureFixture[str]) -> None:
    row = run_json(capsys, "count", REPORT)
    digits = count(REPORT, shape=InputShape(3, 32, 32), classes=10)
    assert (row["input"], row["classes"], row["assumed"]) == ("3x32x32", 10, ["input", "classes"])
    assert (row["flops"], row["params"]) == (digits.flops, digits.params) == (6_209_920, 11_786)
    assert main(["count", REPORT, "--classes", "2"]) == 0
    out = " ".join(capsys.readouterr().out.split())     # rich wraps at the terminal's width
    assert "3x32x32, 2 classes (assumed: digits, the default data; set --image-size)" in out
    summary = run_json(capsys, "space")
    assert (summary["space"], summary["input"], summary["classes"]) == ("seed.toml", "3x32x32", 10)
    assert main(["space", "tiny.toml"]) == 0          # tiny.toml's [input] is 3x16x16
    assert "3x16x16, 10 classes (assumed: digits, the default data; set --classes)" in \
        " ".join(capsys.readouterr().out.split())


def test_count_json_se_row_by_flag_and_by_word(capsys: pytest.CaptureFixture[str]) -> None:
    by_flag = run_json(capsys, "count", REPORT, "--attention", "se", *REPORT_INPUT)
    by_word = run_json(capsys, "count", "[2, 8, 6, 1, 0] [2, 16, 4, 1, 0] se", *REPORT_INPUT)
    assert by_flag == by_word
    assert (by_flag["genome"], by_flag["attention"]) == (REPORT, "se")
    assert (by_flag["flops"], by_flag["params"]) == (180_353_440, 14_330)


def test_count_defaults_are_build_model_and_counts(capsys: pytest.CaptureFixture[str]) -> None:
    """One default input and class count: `nas count`, `count()` and `build_model()` agree."""
    import torch

    from nas import build_model

    row = run_json(capsys, "count", REPORT)
    assert (count(REPORT).flops, count(REPORT).params) == (row["flops"], row["params"])
    model = build_model(REPORT)
    assert tuple(model(torch.rand(1, 3, 32, 32)).shape) == (1, 10)
    assert sum(p.numel() for p in model.parameters()) == row["params"]
    small = build_model(REPORT, shape=(3, 16, 16))                 # a tuple works as a shape
    assert small.arch.input == InputShape(3, 16, 16) and count(REPORT, shape=(16, 16)).flops == \
        count(REPORT, shape=InputShape(3, 16, 16)).flops
    sized = run_json(capsys, "count", REPORT, "--image-size", "16x16")
    assert (sized["flops"], sized["input"]) == (count(REPORT, shape=(3, 16, 16)).flops, "3x16x16")
    assert run_json(capsys, "count", REPORT, "--image-size", "16")["input"] == "3x16x16"


def test_count_input_and_classes(capsys: pytest.CaptureFixture[str]) -> None:
    row = run_json(capsys, "count", "[2,12,2,2,1] [3,20,1,1,0]", "--attention", "none",
                   "--input", "3x33x17", "--classes", "7")
    expected = count("[2,12,2,2,1] [3,20,1,1,0] none", shape=InputShape(3, 33, 17), classes=7)
    assert (row["flops"], row["params"]) == (expected.flops, expected.params)
    assert (row["input"], row["classes"], row["attention"]) == ("3x33x17", 7, "none")
    assert row["genome"] == "[2,12,2,2,1] [3,20,1,1,0]"
    assert row["built"] == "[2,16,2,2,1] [3,24,1,1,0]"
    assert row["in_space"] is False           # 12, 20 and t = 3 are not among seed.toml's choices


def test_count_space_supplies_input_and_settings(capsys: pytest.CaptureFixture[str]) -> None:
    tiny = str(SPACES / "tiny.toml")
    row = run_json(capsys, "count", "[2,16,1,1,1] [2,24,2,2,0]", "--space", tiny, "--classes", "2")
    expected = count("[2,16,1,1,1] [2,24,2,2,0]", load_space(tiny), classes=2)
    assert (row["flops"], row["params"], row["input"]) == (expected.flops, expected.params, "3x16x16")
    assert row["in_space"] is True and row["space"] == tiny


def test_count_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["count", REPORT, *REPORT_INPUT]) == 0
    out = capsys.readouterr().out
    assert "0.180 G (180,348,032)" in out
    assert "10,754" in out and "3x185x160, 2 classes" in out and REPORT in out
    assert main(["count", "[2,12,1,1,0]", "--attention", "se"]) == 0
    out = capsys.readouterr().out
    assert "(built as [2,16,1,1,0])" in out and "se" in out


def test_count_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    err = run_error(capsys, "count", FIVE_STAGES)
    assert "seed.toml: genome" in err
    assert "has 5 stages, the space defines at most 4" in err
    err = run_error(capsys, "count", "[2,8,6,3,0]")
    assert "stage 1.s must be 1 or 2, got 3" in err
    err = run_error(capsys, "count", "[2,8,6,1]")
    assert "has 4 genes, expected 5" in err
    err = run_error(capsys, "count", REPORT + " cbam")
    assert "'cbam'" in err
    err = run_error(capsys, "count", REPORT, "--space", str(tmp_path / "missing.toml"))
    assert "missing.toml: no such space file" in err
    err = run_error(capsys, "count", REPORT, "--image-size", "8x8", "--input", "3x8x8")
    assert "give --image-size or --input (deprecated), not both" in err


def test_count_too_many_stages_for_a_smaller_space(capsys: pytest.CaptureFixture[str]) -> None:
    err = run_error(capsys, "count", "[1,8,1,1,0] [2,16,1,2,0] [2,24,1,2,0]", "--space",
                    str(SPACES / "tiny.toml"))
    assert "has 3 stages, the space defines at most 2" in err


@pytest.mark.parametrize(("flags", "fragment"), [
    (["--input", "3x100000x5"], "height and width must be between 1 and 4096"),
    (["--input", "big"], "input shape must look like 3x185x160"),
    (["--image-size", "3x8x8"], "--image-size must look like HxW"),
    (["--input", "3x²x5"], "input shape must look like 3x185x160"),
    (["--classes", "0"], "classes must be an integer from 1 to 100000"),
    (["--attention", "cbam"], "invalid choice"),
])
def test_count_bad_flags_exit_2(capsys: pytest.CaptureFixture[str], flags: list[str], fragment: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(["count", REPORT, *flags])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--debug", "count", FIVE_STAGES]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "GenomeError" in err
    assert err.rstrip().endswith("the space defines at most 4")


# --- nas space -------------------------------------------------------------------------------

def test_space_json_tiny_equals_brute_force(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(SPACES / "tiny.toml")
    summary = run_json(capsys, "space", path, "--classes", "2")
    space = load_space(path)
    genomes = all_genomes(space)
    assert summary["genomes"] == len({g.rounded() for g in genomes}) == 160
    assert (summary["space"], summary["name"], summary["stages"]) == (path, "tiny", [1, 2])
    assert (summary["attention"], summary["input"], summary["classes"]) == (["eca", "none"], "3x16x16", 2)
    rows = {g: count(g, space, classes=2) for g in genomes}
    for name, pick in (("smallest", min), ("largest", max)):
        best = pick((r.flops, r.params) for r in rows.values())
        reported = summary[name]
        assert (reported["flops"], reported["params"]) == best
        genome = Genome.parse(reported["genome"], reported["attention"])
        assert genome in rows and (rows[genome].flops, rows[genome].params) == best
        assert set(reported) == {"genome", "attention", "flops", "params"}


def test_space_json_seed(capsys: pytest.CaptureFixture[str]) -> None:
    summary = run_json(capsys, "space", "search_spaces/seed.toml")    # count()'s defaults too
    assert summary["genomes"] == 3 * sum(576**d for d in range(1, 5))
    assert summary["stages"] == [1, 4] and summary["attention"] == ["eca", "se", "none"]
    assert (summary["input"], summary["classes"]) == ("3x32x32", 10)
    smallest, largest = summary["smallest"], summary["largest"]
    # Deeper is smaller here: each stride-2 stage makes the 128-wide head cheaper than it costs.
    four = count("[1,8,1,2,0] [1,8,1,2,0] [1,8,1,2,0] [1,8,1,2,0] none")
    assert smallest["flops"] <= four.flops < count("[1,8,1,2,0] none").flops
    assert largest == {"genome": "[6,64,6,1,1] [6,64,6,1,1] [6,64,6,1,1] [6,64,6,1,1]",
                       "attention": "se", "flops": count(largest["genome"] + " se").flops,
                       "params": count(largest["genome"] + " se").params}
    for row in (smallest, largest):
        assert count(Genome.parse(row["genome"], row["attention"])).flops == row["flops"]


def test_space_input_and_classes(capsys: pytest.CaptureFixture[str]) -> None:
    summary = run_json(capsys, "space", str(SPACES / "tiny.toml"), "--input", "1x9x13", "--classes", "5")
    assert (summary["input"], summary["classes"]) == ("1x9x13", 5)
    space = load_space(SPACES / "tiny.toml")
    smallest = summary["smallest"]
    expected = count(Genome.parse(smallest["genome"], smallest["attention"]), space,
                     shape=InputShape(1, 9, 13), classes=5)
    assert (smallest["flops"], smallest["params"]) == (expected.flops, expected.params)
    best = min(count(g, space, shape=InputShape(1, 9, 13), classes=5).flops for g in all_genomes(space))
    assert smallest["flops"] == best


def test_space_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["space", str(SPACES / "tiny.toml"), "--classes", "2"]) == 0
    out = capsys.readouterr().out
    assert "160" in out and "1 to 2" in out and "eca, none" in out and "3x16x16, 2 classes" in out


def test_space_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nhead = = 3\n")
    err = run_error(capsys, "space", str(bad))
    assert f"{bad}: TOML syntax error" in err and "line 2, column" in err
    bad.write_text("[[stage]]\nt = 1\nc = 8\nn = 1\ns = 3\nfused = 0\n")
    assert f"{bad}: stage[1].s must be 1 or 2, got 3" in run_error(capsys, "space", str(bad))
    bad.write_text("[[stage]]\nt = 1\nc = 8\nn = 1\ns = 1\nfused = 0\nfuse = 1\n")
    assert "did you mean `fused`?" in run_error(capsys, "space", str(bad))
    assert "no such space file" in run_error(capsys, "space", str(tmp_path / "nope.toml"))


# --- the real command --------------------------------------------------------------------------

def nas_command() -> list[str]:
    """The installed `nas` script, else the same entry point through this interpreter."""
    script = shutil.which("nas") or shutil.which("nas", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-c", "import sys; from nas.cli import main; "
                                                          "sys.exit(main())"]


def test_real_subprocess_exit_2_one_line() -> None:
    env = {**os.environ, "COLUMNS": "200"}
    run = subprocess.run([*nas_command(), "count", FIVE_STAGES], cwd=ROOT, env=env, text=True,
                         capture_output=True, timeout=120)
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.startswith("nas: error: seed.toml: genome [1,8,1,1,0]")
    assert run.stderr.endswith("has 5 stages, the space defines at most 4\n")
    assert run.stderr.count("\n") == 1
    assert "Traceback" not in run.stderr
