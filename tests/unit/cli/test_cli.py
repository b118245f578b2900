"""`aiops run` refuses what a user got wrong (a date range backwards, an unknown model) with
exit code 2 before anything runs."""

from __future__ import annotations

from datetime import date

import pytest

from aiops_pipelines.cli import main

pytestmark = pytest.mark.slow  # a two-week world

END = date(2026, 3, 14)


#: the module's demo world, built once by the `world` fixture (tests/conftest.py), for the
#: config it writes (its one test writes nothing into it)
WORLD = dict(days=14, end_date=END, rows_per_day=1100, reference_rows=3000, register_models=False)


def test_unknown_model_and_bad_dates_are_user_errors(world, capsys) -> None:
    cfg = str(world.config_path)
    assert main(["run", "--config", cfg, "--start", "2026-03-05", "--end", "2026-03-04"]) == 2
    assert "before --start" in capsys.readouterr().err
    assert (
        main(
            [
                "run",
                "--config",
                cfg,
                "--start",
                "2026-03-05",
                "--end",
                "2026-03-05",
                "--model",
                "acme.nope",
            ]
        )
        == 2
    )
    assert "unknown model" in capsys.readouterr().err
