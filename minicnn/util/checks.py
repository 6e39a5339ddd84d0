"""Checks of the numbers a user sets: seeds, noise levels, epsilons, counts.

One rule for every option and API parameter: a value that is not a number,
not finite, negative where only >= 0 makes sense, or absurdly large is a
one-line :class:`~minicnn.errors.InputError` (exit status 2 on the command
line, 400 from the server), raised before any work.
"""

from __future__ import annotations

import math
import numbers

from ..errors import InputError

__all__ = ["MAX_SEED", "check_seed", "check_real", "check_count"]

#: Seeds are integers in 0 .. 2**64 - 1 (what ``np.random.default_rng`` takes as one word).
MAX_SEED = 2**64 - 1


def check_seed(seed, what: str = "seed") -> int:
    """``seed`` as an int in 0 .. :data:`MAX_SEED`; else a one-line InputError."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= MAX_SEED:
        raise InputError(f"{what} must be an integer from 0 to 2**64 - 1; got {seed!r}")
    return int(seed)


def check_count(value, what: str, *, low: int = 1, high: int | None = None) -> int:
    """``value`` as an int with ``low <= value`` (``<= high`` if given); else a one-line InputError."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low
            or (high is not None and value > high)):
        span = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise InputError(f"{what} must be an integer {span}; got {value!r}")
    return int(value)


def check_real(value, what: str, *, low: float = 0.0, high: float = math.inf, low_open: bool = False) -> float:
    """``value`` as a finite float with ``low <= value <= high`` (``low < value`` if ``low_open``).

    NaN, infinities, booleans and non-numbers are refused with a one-line InputError.
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    v = float(value) if ok else math.nan
    if not (ok and math.isfinite(v) and (v > low if low_open else v >= low) and v <= high):
        lo = f"> {low:g}" if low_open else f">= {low:g}"
        hi = ", finite" if math.isinf(high) else f", finite and at most {high:g}"
        raise InputError(f"{what} must be a number {lo}{hi}; got {value!r}")
    return v
