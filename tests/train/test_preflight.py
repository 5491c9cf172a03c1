"""nas.train.preflight: the data and memory checks run by `prepare` for every command that trains
(ablate and export's retraining included), before the data is read; the teacher kinds are
resolved here, not in nas.data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nas.cli import main
from nas.errors import TrainError
from nas.model.genome import Genome
from nas.model.space import parse_space
from nas.store.runs import Store
from nas.train.experiment import prepare
from nas.train.preflight import Plan, check_source, teacher_genome
from tests.training import FAST_TEACHER, space_text

HUGE = "[32,8192,64,1,1]"       # 4 GiB of weights and optimiser state, and more at the batch size
REFUSED = r"needs about [\d,.]+ GiB of memory \(the biggest model at the batch size"


def test_the_genome_teacher_is_checked_the_trunk_teachers_not() -> None:
    space = parse_space(space_text(teacher={**FAST_TEACHER, "kind": "genome"}), "s.toml")
    assert teacher_genome(space, "digits") == Genome.parse(FAST_TEACHER["genome"], "eca")
    assert teacher_genome(space, "photos/") == Genome.parse(FAST_TEACHER["genome"], "eca")
    auto = parse_space(space_text(teacher=FAST_TEACHER), "s.toml")      # kind auto
    assert teacher_genome(auto, "digits") == Genome.parse(FAST_TEACHER["genome"], "eca")
    assert teacher_genome(auto, "photos/") is None                      # the pretrained Lite0
    for kind in ("lite", "torchvision", "timm"):
        trunk = parse_space(space_text(teacher={"kind": kind}), "s.toml")
        assert teacher_genome(trunk, "digits") is None
    plain = parse_space(space_text(teacher=FAST_TEACHER, distill={"loss": "none"}), "s.toml")
    assert teacher_genome(plain, "digits") is None


def test_a_huge_teacher_genome_is_refused_before_the_data_is_read(tmp_path: Path) -> None:
    space = parse_space(space_text(teacher={**FAST_TEACHER, "genome": HUGE}), "s.toml")
    with pytest.raises(TrainError, match=REFUSED):
        check_source(space, "digits", (8, 8))
    teacherless = parse_space(space_text(teacher={**FAST_TEACHER, "genome": HUGE},
                                         distill={"loss": "none"}), "s.toml")
    check_source(teacherless, "digits", (8, 8))          # no teacher trains: nothing to refuse


def test_prepare_runs_the_preflight_of_its_plan(tmp_path: Path) -> None:
    """prepare is what ablate and export --retrain-epochs call: it refuses before decoding."""
    space = parse_space(space_text(teacher=FAST_TEACHER), "s.toml")
    store = Store(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(TrainError, match=REFUSED):
        prepare(space, "digits", store, size=(8, 8), device=torch.device("cpu"),
                cache_dir=tmp_path / "cache", plan=Plan((Genome.parse(HUGE),)))
    assert not (tmp_path / "cache").exists()


def test_ablate_refuses_an_arm_that_cannot_fit_before_the_database(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny = Path(__file__).resolve().parents[2] / "nas" / "search_spaces" / "tiny.toml"
    path = tmp_path / "ab.toml"
    path.write_text(f'name = "t"\nspace = "{tiny}"\ndata = "digits"\nimage_size = "8x8"\nepochs = 1\n'
                    f'[[arm]]\nname = "small"\ngenome = "[1,8,1,1,0]"\n'
                    f'[[arm]]\nname = "huge"\ngenome = "{HUGE}"\n')
    assert main(["ablate", str(path), "--storage", f"sqlite:///{tmp_path / 'a.db'}", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "needs about" in err and "the biggest model at the batch size" in err
    assert not (tmp_path / "a.db").exists()
