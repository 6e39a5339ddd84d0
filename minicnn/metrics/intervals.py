"""The mean of a metric over images, with its 95% confidence interval.

For values v_1 .. v_n (one per image) with mean m and sample standard
deviation s (divided by n - 1), the interval is Student's t interval

    m -/+ t_{0.975, n-1} * s / sqrt(n)

the range that covers the mean over all images like these in 95% of
samples, if the per-image values are independent and their mean is about
normally distributed (true for n of a hundred or more, whatever the values'
own distribution). Values all equal give the interval [m, m]; one value
gives no interval at all (low and high NaN: s needs two values), and so
the tables say so rather than print [m, m]. Values that are NaN are left out.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import t as student_t


class IntervalWarning(UserWarning):
    """A 95% interval could not be estimated (a mean over one image); the command line prints it as a note."""


def mean_ci95(values) -> tuple[float, float, float]:
    """(mean, low, high) of the finite values; (nan, nan, nan) when there are none."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(v.mean())
    if v.size == 1:
        return m, float("nan"), float("nan")           # one value: no spread to estimate an interval from
    half = float(student_t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return m, m - half, m + half


def summary(values) -> dict:
    """{"mean": m, "ci95": [low, high]}, the form of every metric in the scorecard's JSON."""
    m, lo, hi = mean_ci95(values)
    return {"mean": m, "ci95": [lo, hi]}
