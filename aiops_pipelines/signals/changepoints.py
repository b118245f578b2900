"""Lasting level shifts and when they started: change points, next to the spike detector.

`signals.anomaly` compares each hour with the same hour of past weeks, which is right for a
spike and wrong for a change that lasts: traffic that halves and stays is absorbed into the
baseline within days. This module segments the whole history window instead and reports the
current level against the level before its onset, for as long as it lasts.

Method (`change_points`)
------------------------
1. **Scale.** Ratio series (throughput, latency) are taken in logs, so "halved" is the same
   step at any volume; rates and daily metrics stay as they are.
2. **Seasonality.** With a period (24 for hourly series, 168 once three weeks are known), the
   seasonal shape is removed: per phase, the median over cycles of the value minus the running
   median of the period around it. A trend or a level shift moves the running median along,
   so the shape is not bent by the changes it must not hide.
3. **Noise.** sigma = 1.4826 * MAD of the first differences / sqrt(2): differences cancel
   the level, so a shift (one large difference) or an outlier (two) barely moves it. A
   quantised series (a share of a few features) can sit on one value for weeks, so that most
   differences are 0: `min_sigma`, its resolution, is then the floor.
4. **Segmentation.** `ruptures` PELT (`KernelCPD` with the linear kernel: the least-squares
   cost, in C) on the standardised series, outliers beyond 3 sigmas of a running median
   pulled in first, minimum segment `min_size` points (an outlier or a one-hour blip cannot
   be a segment), penalty ``penalty * log(n)`` per change point (BIC's 2 log n with a margin
   for an estimated sigma and non-Gaussian noise: 4 log n by default).
5. **Pruning.** A change point is kept only when the two segments beside it differ by at least
   `min_shift` sigmas and a single straight line through both fits clearly worse than a step
   (a trend cut into stairs is one trend, not many shifts); the test is repeated until every
   remaining change point passes.

`current_shift` then walks back from the last segment: consecutive steps in one direction
form one shift (a staircase drop has one onset, its first stair carrying at least a quarter of
the change); a step back to the level before it is a recovery, not a new shift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import ruptures as rpt

Scale = Literal["log", "linear"]

PENALTY = 4.0
"""Penalty per change point, in units of log(n) on the standardised series."""
MIN_SHIFT = 1.0
"""Smallest step kept, in noise standard deviations of one point."""
MIN_SIZE = 6
"""Shortest segment, in points."""


def robust_sigma(values: np.ndarray) -> float:
    """Noise of one point from the median absolute first difference (level-free)."""
    d = np.diff(values[np.isfinite(values)])
    if d.size < 2:
        return math.nan
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2))


def deseasonalise(values: np.ndarray, period: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The series minus its seasonal shape, and the shape per point (zeros without a period,
    with fewer than two full cycles, or when the shape is no larger than the noise of its own
    estimate: removing a shape that is not there only adds noise)."""
    n = values.size
    if not period or n < 2 * period:
        return values.copy(), np.zeros(n)
    n_cycles = math.ceil(n / period)
    # each value against the running median of the period around it: a trend or a level shift
    # moves the running median along, so neither bends the shape (a shift distorts one cycle,
    # which the median over cycles ignores)
    local = (
        pd.Series(values).rolling(period, center=True, min_periods=period // 2).median().to_numpy()
    )
    cycles = np.full((n_cycles, period), np.nan)
    cycles.flat[:n] = values - local
    shape = np.nanmedian(cycles, axis=0)
    shape = np.where(np.isfinite(shape), shape - np.nanmedian(shape), 0.0)
    per_point = np.resize(shape, n)
    # a median of k noisy values has a standard error of ~1.25 sigma / sqrt(k); sigma from
    # what is left once the shape is out (the raw hour-to-hour swings are the shape itself)
    noise = robust_sigma(values - per_point) * 1.25 / math.sqrt(n_cycles)
    if not np.std(shape) > 2 * noise:
        return values.copy(), np.zeros(n)
    return values - per_point, per_point


CLIP = 3.0
"""Points further than this many sigmas from their running median are pulled back to it."""


def _clip_outliers(y: np.ndarray, sigma: float, min_size: int) -> np.ndarray:
    """Winsorise isolated outliers around a running median of 2 * min_size + 1 points: a step
    moves the running median with it, a spike shorter than min_size does not."""
    centre = pd.Series(y).rolling(2 * min_size + 1, center=True, min_periods=1).median().to_numpy()
    return centre + np.clip(y - centre, -CLIP * sigma, CLIP * sigma)


def _step_beats_line(y: np.ndarray, a: int, b: int, c: int, sigma: float, pen: float) -> bool:
    """Segments y[a:b] and y[b:c]: does a step explain them better than one straight line?"""
    left, right = y[a:b], y[b:c]
    rss_step = ((left - left.mean()) ** 2).sum() + ((right - right.mean()) ** 2).sum()
    x = np.arange(a, c, dtype=np.float64)
    both = y[a:c]
    slope, intercept = np.polyfit(x, both, 1)
    rss_line = ((both - (slope * x + intercept)) ** 2).sum()
    return (rss_line - rss_step) / sigma**2 > pen


def change_points(
    values: np.ndarray | pd.Series,
    *,
    period: int | None = None,
    penalty: float = PENALTY,
    min_shift: float = MIN_SHIFT,
    min_size: int = MIN_SIZE,
    scale: Scale = "linear",
    min_sigma: float = 0.0,
) -> list[int]:
    """Indices where a new level starts (0 < i < n), in order; see the module docstring.

    Missing values are filled with the previous value (the segmentation needs a regular
    series); an all-constant or too short series has none.
    """
    prepared = _prepare(values, period, scale, min_size, min_sigma)
    if prepared is None:
        return []
    return _segment(*prepared, penalty=penalty, min_shift=min_shift, min_size=min_size)


def _prepare(
    values: np.ndarray | pd.Series,
    period: int | None,
    scale: Scale,
    min_size: int,
    min_sigma: float = 0.0,
) -> tuple[np.ndarray, float] | None:
    """The series to segment (scaled, gaps filled, seasonal shape removed) and its noise
    sigma, at least `min_sigma`; None when too short or not finite."""
    x = np.asarray(values, dtype=np.float64)
    if scale == "log":
        x = np.log(np.clip(x, 1e-9, None))
    x = pd.Series(x).ffill().bfill().to_numpy()
    if x.size < 2 * min_size or not np.isfinite(x).all():
        return None
    y, _ = deseasonalise(x, period)
    sigma = robust_sigma(y)
    if min_sigma > 0:
        sigma = max(sigma, min_sigma) if math.isfinite(sigma) else min_sigma
    if not math.isfinite(sigma) or sigma <= 0:
        sigma = float(np.std(y)) or 1.0
    return y, sigma


def _segment(
    y: np.ndarray, sigma: float, *, penalty: float, min_shift: float, min_size: int
) -> list[int]:
    """PELT on the prepared series, then the pruning of steps too small or that a line
    explains (module docstring, steps 4 and 5)."""
    n = y.size
    pen = penalty * math.log(n)
    y = _clip_outliers(y, sigma, min_size)
    # the linear kernel's cost is the least-squares cost; ruptures runs it in C (5,000x faster
    # than Pelt(model="l2") on 672 points here, same segmentation)
    algo = rpt.KernelCPD(kernel="linear", min_size=min_size, jump=1).fit((y / sigma).reshape(-1, 1))
    cps = [int(b) for b in algo.predict(pen=pen) if b < n]
    changed = True
    while changed and cps:
        changed = False
        edges = [0, *cps, n]
        for k in range(1, len(edges) - 1):
            a, b, c = edges[k - 1], edges[k], edges[k + 1]
            step = abs(y[b:c].mean() - y[a:b].mean()) / sigma
            if step < min_shift or not _step_beats_line(y, a, b, c, sigma, pen):
                cps.remove(b)
                changed = True
                break
    return cps


@dataclass(frozen=True)
class LevelShift:
    """A level that changed at `onset` and has stayed changed up to the series' end."""

    onset: pd.Timestamp
    before: float
    after: float
    sigmas: float
    points: int

    @property
    def ratio(self) -> float:
        """after / before (levels in the series' own units)."""
        return self.after / self.before if self.before else math.inf

    @property
    def direction(self) -> Literal["up", "down"]:
        return "up" if self.after > self.before else "down"


def current_shift(
    series: pd.Series,
    *,
    period: int | None = None,
    scale: Scale = "linear",
    penalty: float = PENALTY,
    min_shift: float = MIN_SHIFT,
    min_size: int = MIN_SIZE,
    min_baseline: int = 24,
    settled: int = 168,
    min_duration: int = 12,
    min_sigma: float = 0.0,
) -> LevelShift | None:
    """The shift the series' last segment is in, if any: its onset (the first of consecutive
    same-direction steps), the level before and the level now (medians of the deseasonalised
    segments, back in the series' units), and the step in noise sigmas. None when the last
    segment is the first one, the last step went back to the level before it (recovery), the
    level before held for fewer than `min_baseline` points, or for fewer than the new one and
    `settled` points (the window starts inside an old episode: what came after it is the
    norm), the new level has held for fewer than `min_duration` points (the end of a
    window is where a segment is least certain: a change late in the day is reported the next
    day), or the medians differ by less than `min_shift` sigmas. `min_sigma` floors the noise
    sigma (the series' resolution, for a quantised series that often repeats a value).
    """
    s = series.sort_index()
    prepared = _prepare(s.to_numpy(dtype=np.float64), period, scale, min_size, min_sigma)
    if prepared is None:
        return None
    y, sigma = prepared
    cps = _segment(y, sigma, penalty=penalty, min_shift=min_shift, min_size=min_size)
    if not cps:
        return None
    edges = [0, *cps, len(y)]
    levels = [float(np.median(y[a:b])) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    last = len(levels) - 1
    if last >= 2 and abs(levels[last] - levels[last - 2]) < min_shift * sigma:
        return None  # back where it was before the previous step
    k = last
    sign = np.sign(levels[last] - levels[last - 1])
    while k - 1 >= 1 and np.sign(levels[k - 1] - levels[k - 2]) == sign:
        k -= 1
    # a small first stair (under a quarter of the whole change) is the seasonal shape's
    # estimation noise before the change, not its onset
    first = k
    total = abs(levels[last] - levels[first - 1])
    while k < last and abs(levels[k] - levels[k - 1]) < 0.25 * total:
        k += 1
    before, after = levels[first - 1], levels[last]
    held = edges[first] - edges[first - 1]
    since = len(y) - edges[first]
    if (
        held < min_baseline
        or held < min(since, settled)
        or len(y) - edges[k] < min_duration
        or abs(after - before) < min_shift * sigma
    ):
        return None
    if scale == "log":
        before, after = math.exp(before), math.exp(after)
    return LevelShift(
        onset=s.index[edges[k]],
        before=before,
        after=after,
        sigmas=total / sigma,
        points=len(y) - edges[k],
    )
