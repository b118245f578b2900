"""False level shifts on unchanged models judged day after day: the share of 200 generated
series (roc_auc with sampling noise and a weekend effect, late labels, a stray drifted feature
on ~1% of days; see `QuietModel` in tests/unit/signals/test_daily_shifts.py) that raise a
level shift on any day from the 28th to the 120th. The target: <= 1% of the series.

    PYTHONPATH=. python benchmarks/bench_level_shift_false_alarms.py [--series 200]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.unit.signals.test_daily_shifts import quiet_series_raising_a_shift  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--series", type=int, default=200)
    args = parser.parse_args()
    started = time.perf_counter()
    raised = quiet_series_raising_a_shift(range(args.series))
    print(
        json.dumps(
            {
                "level_shift_false_alarms": {
                    "series": args.series,
                    "raised": len(raised),
                    "share": round(len(raised) / args.series, 4),
                    "seeds": raised,
                    "seconds": round(time.perf_counter() - started, 1),
                }
            }
        )
    )


if __name__ == "__main__":
    main()
