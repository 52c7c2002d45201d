"""Summary statistics of latency samples: one definition for bench, reports and the camera's --stats.

Percentiles interpolate linearly between the two nearest ranks (numpy's default, the same as Excel's
PERCENTILE.INC): p of n sorted samples x[0..n-1] is x at rank p/100 * (n - 1). `std` is the sample standard
deviation (n - 1 in the denominator; 0 for one sample).
"""
from __future__ import annotations

import numpy as np

QUANTILES = (50, 90, 99)


def summarize(samples, digits: int = 3) -> dict[str, float | None]:
    """{p50, p90, p99, mean, std} of the samples, rounded to `digits`; all None when there are none."""
    x = np.asarray(list(samples), dtype=np.float64)
    if not x.size:
        return {**{f"p{q}": None for q in QUANTILES}, "mean": None, "std": None}
    out = {f"p{q}": float(np.percentile(x, q)) for q in QUANTILES}
    out["mean"] = float(x.mean())
    out["std"] = float(x.std(ddof=1)) if x.size > 1 else 0.0
    return {k: round(v, digits) for k, v in out.items()}


def percentile(samples, q: float, digits: int = 2) -> float | None:
    x = np.asarray(list(samples), dtype=np.float64)
    return round(float(np.percentile(x, q)), digits) if x.size else None
