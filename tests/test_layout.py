"""The codebase's shape: one installed namespace, and layers that only point down (import-linter)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def namespace_tree(dest: Path) -> Path:
    """The installed layout (reelscope/schemas, reelscope/analyzers, ...) as a copy of the sources: import-linter
    finds modules by walking the root package's folder, and in the checkout the folders sit side by side."""
    dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for name, folder in sorted(dirs.items()):
        target = dest.joinpath(*name.split("."))
        shutil.copytree(
            ROOT / folder, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
        )
    return dest


def test_layers_point_down_and_services_stay_independent(tmp_path: Path) -> None:
    """The contracts in pyproject.toml: an upward import or a cycle between layers fails here (and in CI)."""
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert lint, "import-linter is not installed (the `test` extra)"
    tree = namespace_tree(tmp_path / "src")
    run = subprocess.run(
        [lint, "--no-cache", str(ROOT / "pyproject.toml")],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken" in run.stdout, run.stdout[-3000:]


def test_only_the_reelscope_namespace_is_installed(tmp_path: Path) -> None:
    """From outside the checkout the packages are reelscope.*; the generic folder names import nothing."""
    code = (
        "import importlib.util, reelscope.schemas.events, reelscope.analyzers.registry\n"
        "bare = [n for n in ('schemas', 'analyzers', 'infra', 'sinks', 'producers', 'stream_processors')"
        " if importlib.util.find_spec(n) is not None]\n"
        "assert not bare, bare\n"
        "print(reelscope.schemas.events.__file__)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().endswith("events.py")


def test_every_package_folder_is_mapped_into_the_namespace() -> None:
    """A new subpackage folder must be listed in pyproject.toml, or an installed reelscope lacks it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    dirs = config["package-dir"]
    found = set()
    for name, folder in dirs.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]))
    assert found == listed, f"unlisted: {sorted(found - listed)}; listed but absent: {sorted(listed - found)}"


def test_python_dash_m_reelscope_runs_the_cli(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "reelscope", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "analyze" in run.stdout
