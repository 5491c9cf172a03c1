"""A real (non-editable) install: the wheel carries the bundled spaces, and `nas` finds them anywhere."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = {"seed.toml", "photos.toml", "cifar10.toml", "tiny.toml", "efficientnetv2_s.toml",
           "ablations/se_vs_eca.toml", "ablations/report_genomes.toml"}


def build_wheel(tmp_path: Path) -> Path:
    """Build from a copy of the tree, so the checkout gets no build/ or egg-info."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "nas", source / "nas", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(tmp_path / "dist"), str(source)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("nas_distill-*.whl")     # the distribution's name
    return wheel


def extras(wheel: Path) -> dict[str, set[str]]:
    """Each `Provides-Extra` of the wheel's METADATA -> its `Requires-Dist` lines (normalised by
    packaging) whose marker is `extra == "NAME"`."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        fields = [line.split(": ", 1) for line in archive.read(name).decode().splitlines() if ": " in line]
    needs: dict[str, set[str]] = {value: set() for key, value in fields if key == "Provides-Extra"}
    for key, value in fields:
        requirement, _, marker = value.partition(";")
        for extra in needs:
            if key == "Requires-Dist" and marker.strip() == f'extra == "{extra}"':
                needs[extra].add(str(Requirement(requirement)))
    return needs


def install(wheel: Path, tmp_path: Path) -> Path:
    """A fresh venv holding only the wheel; the test environment's packages (torch, optuna, ...)
    are reachable through a .pth file, after the venv's own site-packages."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    (own,) = (env_dir / "lib").glob("python3*/site-packages")
    outer = [*site.getsitepackages(), site.getusersitepackages()]
    (own / "outer.pth").write_text("\n".join(outer) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                    "--no-index", "--quiet", str(wheel)], check=True, capture_output=True, timeout=300)
    return env_dir / "bin"


def run(bin_dir: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NAS_STORAGE")}
    return subprocess.run([str(bin_dir / argv[0]), *argv[1:]], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=300)


@pytest.mark.skipif(sys.platform == "win32", reason="venv layout is POSIX here")
def test_wheel_ships_the_spaces_and_nas_finds_them_from_any_directory(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"nas/search_spaces/{name}" for name in BUNDLED} <= names
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    provided = extras(wheel)                 # the README: [onnx] adds the export, [postgres] the driver
    for extra in ("onnx", "postgres"):
        assert provided[extra] == {str(Requirement(r)) for r in declared[extra]} != set(), extra
    bin_dir = install(wheel, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    where = run(bin_dir, elsewhere, "python", "-c", "import nas; print(nas.__file__)")
    assert where.stdout.strip().startswith(str(tmp_path / "venv")), where.stdout + where.stderr

    space = run(bin_dir, elsewhere, "nas", "space", "--json")
    assert space.returncode == 0, space.stderr
    summary = json.loads(space.stdout)
    assert (summary["space"], summary["name"]) == ("seed.toml", "seed")
    assert summary["genomes"] == 3 * sum(576**d for d in range(1, 5))

    tiny = run(bin_dir, elsewhere, "nas", "space", "tiny.toml", "--json")
    assert tiny.returncode == 0, tiny.stderr
    assert json.loads(tiny.stdout)["space"] == "tiny.toml"

    count = run(bin_dir, elsewhere, "nas", "count", "[2,8,6,1,0] [2,16,4,1,0]", "--attention", "eca",
                "--image-size", "185x160", "--classes", "2", "--json")
    assert count.returncode == 0, count.stderr
    assert (json.loads(count.stdout)["flops"], json.loads(count.stdout)["params"]) == (180_348_032, 10_754)

    missing = run(bin_dir, elsewhere, "nas", "space", "nope.toml")
    assert missing.returncode == 2
    assert missing.stderr.startswith("nas: error: nope.toml: no such space file here, nor bundled")
    assert "seed.toml" in missing.stderr and missing.stderr.count("\n") == 1

    api = run(bin_dir, elsewhere, "python", "-c",
              "import importlib.metadata as m, nas; "
              "print(m.version('nas-distill'), callable(nas.train), nas.search.__module__, "
              "nas.objective.__module__, nas.ablate.__module__, nas.train.experiment.__name__)")
    assert api.returncode == 0, api.stderr
    assert api.stdout.split() == ["0.1.0", "True", "nas.api", "nas.api", "nas.api",
                                  "nas.train.experiment"]

    reproduce = run(bin_dir, elsewhere, "nas", "reproduce", "gone.pt")
    assert reproduce.returncode == 2
    assert reproduce.stderr == "nas: error: gone.pt: no such checkpoint file\n"
