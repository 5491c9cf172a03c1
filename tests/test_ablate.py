"""`nas ablate FILE`: every (arm, seed) trained once, mean and spread, reruns reuse runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nas.cli import main
from nas.errors import SpaceError
from nas.study import ablate as ablate_module
from nas.study.ablate import load_ablation
from nas.train.experiment import train_genome

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "nas" / "search_spaces" / "tiny.toml"


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "ab.toml"
    path.write_text(f'name = "t"\nspace = "{TINY}"\ndata = "digits"\nimage_size = "8x8"\n' + body)
    return path


ARMS = '''epochs = 1
seeds = [0, 1]

[[arm]]
name = "eca"
genome = "[1,8,1,1,0]"
attention = "eca"

[[arm]]
name = "none"
genome = "[1,8,1,1,0]"
attention = "none"
'''


def test_ablation_trains_each_arm_and_seed_once(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path, storage = write(tmp_path, ARMS), f"sqlite:///{tmp_path / 'a.db'}"
    calls: list[tuple[str, int]] = []

    def counting(ctx, genome, **kwargs):  # type: ignore[no-untyped-def]
        calls.append((str(genome), kwargs["seed"]))
        return train_genome(ctx, genome, **kwargs)

    monkeypatch.setattr("nas.train.experiment.train_genome", counting)
    assert main(["ablate", str(path), "--storage", storage, "--quiet", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert sorted(calls) == sorted([("[1,8,1,1,0] eca", 0), ("[1,8,1,1,0] eca", 1),
                                    ("[1,8,1,1,0] none", 0), ("[1,8,1,1,0] none", 1)])
    arms = {a["arm"]: a for a in first["arms"]}
    for arm in arms.values():
        vals = [r["val_accuracy"] for r in arm["runs"]]
        assert arm["seeds"] == [0, 1]
        assert arm["val_accuracy"] == pytest.approx(sum(vals) / 2)
        assert arm["val_std"] == pytest.approx(abs(vals[0] - vals[1]) / 2 ** 0.5)
    assert arms["eca"]["params"] == arms["none"]["params"] + 4       # ECA's conv1d: 3 + bias
    assert main(["ablate", str(path), "--storage", storage, "--quiet", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert len(calls) == 4                                            # nothing retrained
    assert again["arms"] == first["arms"]
    assert main(["ablate", str(path), "--storage", storage]) == 0     # the rich table
    out = capsys.readouterr().out
    assert "ablation 't'" in out and "±" in out


@pytest.mark.parametrize(("body", "message"), [
    ("seeds = [0, 0]\n[[arm]]\ngenome = '[1,8,1,1,0]'\n", "seeds must be a non-empty list"),
    ("[[arm]]\ngenom = '[1,8,1,1,0]'\n", "did you mean `genome`"),
    ("[[arm]]\ngenome = '[1,8,1,3,0]'\n", "s must be 1 or 2, got 3"),
    ("epochs = 0\n[[arm]]\ngenome = '[1,8,1,1,0]'\n", "epochs must be an integer >= 1"),
    ("", "at least one [[arm]]"),
])
def test_bad_ablation_files(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(SpaceError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_ablation(write(tmp_path, body))


def test_shipped_ablations_parse() -> None:
    for path in sorted((ROOT / "nas" / "search_spaces" / "ablations").glob("*.toml")):
        ablation = load_ablation(path)
        assert ablation.arms and ablation.seeds == (0, 1, 2)
    assert ablate_module.load_ablation(ROOT / "nas/search_spaces/ablations/se_vs_eca.toml").study == \
        "ablate/se-vs-eca"
