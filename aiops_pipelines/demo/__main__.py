"""Build the demo world without monitoring it: `python -m aiops_pipelines.demo [HOME]`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from aiops_pipelines.demo.world import build_world


def main(argv: list[str] | None = None) -> None:
    """`python -m aiops_pipelines.demo [HOME]`: build the world and say where it is."""
    from aiops_pipelines.core.config import aiops_home

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("home", nargs="?", default=str(aiops_home() / "demo"))
    ap.add_argument("--days", type=int, default=64)
    ap.add_argument("--rows-per-day", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-mlflow", action="store_true", help="skip training runs and registry")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    world = build_world(
        Path(args.home),
        days=args.days,
        rows_per_day=args.rows_per_day,
        seed=args.seed,
        register_models=not args.no_mlflow,
    )
    print(
        f"demo world in {world.home} ({time.perf_counter() - t0:.1f}s); config: {world.config_path}"
    )


if __name__ == "__main__":
    main()
