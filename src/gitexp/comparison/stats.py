"""Statistics over seed groups: mean ± sd and n, and whether two groups differ beyond noise.

scipy does the tests (Welch's t-test, the bootstrap); it loads only when a test is computed,
since `gitexp diff` of two unrepeated runs must not pay for it.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

ALPHA = 0.05  # a difference with Welch p ≥ ALPHA is within noise
CONFIDENCE = 0.95
RESAMPLES = 9999
_SEED = 0  # the bootstrap resamples alike every time: the same runs give the same interval


@dataclass(frozen=True)
class Spread:
    """One metric over the runs of a group: n finite values, their mean and sample sd."""

    n: int
    mean: float | None  # None when no value is finite
    sd: float | None  # None when n < 2

    @property
    def values_needed(self) -> str | None:
        """Why there is no sd, or None."""
        if self.n == 0:
            return "no run has a finite value"
        if self.n == 1:
            return "one run only (n = 1): repeat it with other seeds for a spread"
        return None


def spread(values: Sequence[float]) -> Spread:
    """Mean and sample standard deviation of the finite `values`."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return Spread(0, None, None)
    sd = statistics.stdev(finite) if len(finite) > 1 else None
    return Spread(len(finite), statistics.fmean(finite), sd)


@dataclass(frozen=True)
class Difference:
    """B against A: the difference of means and, with at least two runs on each side, a
    Welch t-test and a bootstrap confidence interval of it."""

    delta: float | None  # mean B - mean A
    relative: float | None  # delta / |mean A|; None when mean A is 0
    p_value: float | None = None  # Welch's t-test, two-sided
    ci: tuple[float, float] | None = None  # bootstrap 95 % interval of the delta
    within_noise: bool | None = None  # None: not enough runs to say
    method: str | None = None  # how within_noise was decided
    reason: str | None = None  # why there are no statistics


def _delta(a: Spread, b: Spread) -> tuple[float | None, float | None]:
    if a.mean is None or b.mean is None:
        return None, None
    delta = b.mean - a.mean
    return delta, (delta / abs(a.mean) if a.mean else None)


def difference(a: Sequence[float], b: Sequence[float], tests: bool = True) -> Difference:
    """How group B's values differ from group A's, and whether beyond seed noise.

    Two or more runs on each side: Welch's t-test, within noise when p ≥ 0.05 — the one
    verdict `diff` and `compare` both give — and, with `tests`, a bootstrap interval (it
    loads scipy.stats, a second: `compare` only). Two or more on one side only: within noise
    when |Δ| ≤ 2 sd of that side. Otherwise no statistics, and `reason` says why.
    """
    sa, sb = spread(a), spread(b)
    delta, relative = _delta(sa, sb)
    if delta is None:
        side = "A" if sa.mean is None else "B"
        return Difference(None, None, reason=f"{side} has no finite value")
    if sa.sd is None and sb.sd is None:
        return Difference(delta, relative, reason="one run on each side (n = 1): no spread to "
                          "judge noise by; repeat them with other seeds")  # fmt: skip
    if sa.sd is None or sb.sd is None:
        sd = sb.sd if sa.sd is None else sa.sd
        assert sd is not None
        return Difference(
            delta, relative, within_noise=abs(delta) <= 2 * sd, method="|Δ| ≤ 2 sd",
            reason=f"one run on side {'A' if sa.sd is None else 'B'}: no t-test",
        )  # fmt: skip
    finite_a = [v for v in a if math.isfinite(v)]
    finite_b = [v for v in b if math.isfinite(v)]
    if sa.sd == 0 and sb.sd == 0:
        return Difference(delta, relative, within_noise=delta == 0, method="no spread",
                          reason="every run of each side gave the same value")  # fmt: skip
    p_value = welch_p(finite_a, finite_b)
    return Difference(
        delta,
        relative,
        p_value=p_value,
        ci=bootstrap_ci(finite_a, finite_b) if tests else None,
        within_noise=p_value >= ALPHA,
        method=f"Welch p ≥ {ALPHA}",
    )


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """The two-sided p-value of Welch's t-test (unequal variances) of mean B = mean A: the
    same number as `scipy.stats.ttest_ind(b, a, equal_var=False).pvalue` (the tests hold
    them together). The statistic and its Welch-Satterthwaite degrees of freedom are the
    textbook formulas.
    """
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    error = math.sqrt(va + vb)
    if error == 0:
        return 1.0 if statistics.fmean(a) == statistics.fmean(b) else 0.0
    t = (statistics.fmean(b) - statistics.fmean(a)) / error
    freedom = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    p = _t_two_sided(t, freedom)
    return p if math.isfinite(p) else 1.0


def _t_two_sided(t: float, df: float) -> float:
    """P(|T| ≥ |t|) for Student's t with `df` degrees of freedom: I_x(df/2, 1/2), the
    regularized incomplete beta function at x = df / (df + t²).

    Computed here rather than by scipy.special, whose import alone (0.4 s) is more than
    `diff`'s whole budget (DESIGN.md §8): I_x by its continued fraction where that converges
    fast, x < (a+1)/(a+b+2); elsewhere 1 - I_(1-x)(b, a). 1 - x is t² / (df + t²), not
    computed by subtraction, which would lose it when t is small.
    """
    a, b = df / 2, 0.5
    x, rest = df / (df + t * t), t * t / (df + t * t)
    if x < (a + 1) / (a + b + 2):
        return _beta_fraction(a, b, x, rest)
    return 1.0 - _beta_fraction(b, a, rest, x)


def _beta_fraction(a: float, b: float, x: float, rest: float) -> float:
    """I_x(a, b) (with rest = 1 - x) by its continued fraction, evaluated by the modified
    Lentz method."""
    if x <= 0.0:
        return 0.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x)
        + b * math.log(rest)
    )  # fmt: skip
    tiny = 1e-300
    fraction, c, d = 1.0, 1.0, 0.0
    for i in range(1000):
        m = i // 2
        if i == 0:
            term = 1.0
        elif i % 2 == 0:
            term = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            term = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + term * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + term / c
        c = c if abs(c) > tiny else tiny
        fraction *= c * d
        if abs(1.0 - c * d) < 1e-15:
            break
    return math.exp(log_front) * (fraction - 1.0) / a


def bootstrap_ci(a: Sequence[float], b: Sequence[float]) -> tuple[float, float] | None:
    """A bootstrap 95 % confidence interval of mean B - mean A (percentile method, a fixed
    seed so that it reads the same every time); None when it cannot be computed."""
    import numpy as np
    from scipy import stats  # type: ignore[import-untyped]  # a second to load: only here

    def mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(y, axis=axis) - np.mean(x, axis=axis)  # type: ignore[no-any-return]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate resamples of three runs: said by None
        result = stats.bootstrap(
            (np.asarray(a, dtype=float), np.asarray(b, dtype=float)),
            mean_difference,
            n_resamples=RESAMPLES,
            confidence_level=CONFIDENCE,
            method="percentile",
            rng=np.random.default_rng(_SEED),
        )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    return low, high
