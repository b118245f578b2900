"""The layout is a contract: only the Dagster wiring imports dagster, and the engine's rooms
import downward in the order of the flow (the import-linter contracts in pyproject.toml)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("aiops_pipelines", "assets", "sensors")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "lint-imports"
    return subprocess.run(
        [str(exe), "--no-cache", "--no-logo", str(root / "pyproject.toml")],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _copy_of_the_tree(tmp_path: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_engine_imports_no_dagster_and_its_rooms_import_downward() -> None:
    run = _lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 kept, 0 broken" in run.stdout


def test_an_engine_module_importing_dagster_breaks_the_boundary(tmp_path: Path) -> None:
    tree = _copy_of_the_tree(tmp_path)
    module = tree / "aiops_pipelines" / "signals" / "drift" / "statistics.py"
    module.write_text(module.read_text() + "\nimport dagster  # noqa: E402,F401\n")
    run = _lint_imports(tree)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Only the Dagster wiring imports dagster" in run.stdout
    assert "aiops_pipelines.signals.drift.statistics -> dagster" in run.stdout


def test_a_room_importing_upward_breaks_the_layers(tmp_path: Path) -> None:
    tree = _copy_of_the_tree(tmp_path)
    module = tree / "aiops_pipelines" / "io" / "store.py"
    module.write_text(
        module.read_text() + "\nimport aiops_pipelines.views.overview  # noqa: E402,F401\n"
    )
    run = _lint_imports(tree)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "The engine's rooms import downward only" in run.stdout
    assert "aiops_pipelines.io.store -> aiops_pipelines.views.overview" in run.stdout
