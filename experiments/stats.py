"""Comparison statistics for experiments: intervals, significance tests and sample-ratio checks.

Standard library only (the distributions are computed here, not with SciPy), working from the
counts and sums the app stores rather than raw samples. Conventions throughout:

* group 1 is the control and group 2 the treatment, so ``diff`` is treatment minus control and
  ``relative_diff`` is that difference over the control's value (None when the control's is 0);
* p-values are two-sided;
* too little data for a statistic (no trials, fewer than two observations) returns None, since a
  young experiment is a normal state; impossible input (negative counts, more successes than
  trials, negative variance) raises ValueError, since it is a bug in the caller.
"""

import math
from dataclasses import dataclass
from statistics import NormalDist

MIN_SAMPLE = 100  # per group: below this, callers show the numbers without a verdict
SRM_ALPHA = 0.001  # a sample-ratio test this strict flags real assignment bugs, not noise

# Continued fractions and series stop at a relative change below _EPS; _TINY replaces a zero
# denominator in the modified Lentz method; the iteration cap is a guard, never reached in tests.
_EPS = 1e-15
_TINY = 1e-300
_MAX_ITERATIONS = 100_000
_STIRLING_FROM = 100.0  # log B(a, b) switches to Stirling's series when max(a, b) reaches this
# Beyond this many degrees of freedom, use the normal distribution for Student's t: it is within
# 1e-8 of the t p-value there (the difference shrinks like 1/df), while the beta continued
# fraction loses digits in proportion to df (about 1e-8 relative at 1e9).
_NORMAL_DF = 1e9


@dataclass(frozen=True, slots=True)
class ZTest:
    diff: float
    relative_diff: float | None
    z: float
    p_value: float


@dataclass(frozen=True, slots=True)
class TTest:
    diff: float
    relative_diff: float | None
    t: float
    df: float
    p_value: float


@dataclass(frozen=True, slots=True)
class SRM:
    chi2: float
    df: int
    p_value: float
    mismatch: bool


# --- Distributions -----------------------------------------------------------------------------


def normal_cdf(x: float) -> float:
    """Return P(Z <= x) for a standard normal Z."""
    # erfc keeps full relative precision in the lower tail, where 1 - erf(...) would cancel.
    return 0.5 * math.erfc(-x / math.sqrt(2))


def normal_two_sided_p(z: float) -> float:
    """Return P(|Z| >= |z|) for a standard normal Z."""
    return math.erfc(abs(z) / math.sqrt(2))


def t_two_sided_p(t: float, df: float) -> float:
    """Return P(|T| >= |t|) for Student's T with ``df`` (possibly fractional) degrees of freedom."""
    if not df > 0:
        raise ValueError(f"degrees of freedom must be positive, got {df!r}")
    if math.isinf(t):
        return 0.0
    if df > _NORMAL_DF:
        return normal_two_sided_p(t)
    t2 = t * t
    # P(|T| >= t) = I_x(df/2, 1/2) with x = df / (df + t^2). Both x and 1 - x are computed
    # directly, so neither a tiny t nor a huge one loses precision to a subtraction.
    return _regularized_beta(df / 2, 0.5, df / (df + t2), t2 / (df + t2))


def chi_square_sf(x: float, df: float) -> float:
    """Return P(X >= x) for a chi-square X with ``df`` degrees of freedom."""
    if not df > 0:
        raise ValueError(f"degrees of freedom must be positive, got {df!r}")
    if x <= 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    return _regularized_gamma_upper(df / 2, x / 2)


# --- Tests and intervals -----------------------------------------------------------------------


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Return the Wilson score interval for a proportion, or None when there are no trials."""
    _check_proportion(successes, n)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence!r}")
    if n == 0:
        return None
    # Wilson rather than the Wald interval: it stays inside [0, 1] and keeps its coverage at
    # small n and near 0% or 100%, where the canary's error rates live.
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    z2_n = z * z / n
    centre = (p + z2_n / 2) / (1 + z2_n)
    half_width = z * math.sqrt(p * (1 - p) / n + z2_n / (4 * n)) / (1 + z2_n)
    # At 0 or n successes the bound is exactly 0 or 1, which rounding would miss by ~1e-17;
    # otherwise clamp only rounding, since the bounds are mathematically within [0, 1].
    low = 0.0 if successes == 0 else max(0.0, centre - half_width)
    high = 1.0 if successes == n else min(1.0, centre + half_width)
    return low, high


def two_proportion_z_test(s1: int, n1: int, s2: int, n2: int) -> ZTest | None:
    """Compare two proportions with a pooled two-sided z-test; None if a group is empty."""
    _check_proportion(s1, n1)
    _check_proportion(s2, n2)
    if n1 == 0 or n2 == 0:
        return None
    p1, p2 = s1 / n1, s2 / n2
    diff = p2 - p1
    relative_diff = diff / p1 if p1 else None
    # Pooled under the null hypothesis that both groups share one proportion.
    pooled = (s1 + s2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        # Every trial succeeded, or none did, in both groups: identical, so no evidence at all.
        return ZTest(diff=diff, relative_diff=relative_diff, z=0.0, p_value=1.0)
    z = diff / se
    return ZTest(diff=diff, relative_diff=relative_diff, z=z, p_value=normal_two_sided_p(z))


def mean_var(n: int, total: float, total_sq: float) -> tuple[float, float] | None:
    """Return (mean, sample variance) from a count, sum and sum of squares; None when n < 2."""
    if n < 0:
        raise ValueError(f"n must not be negative, got {n!r}")
    if n < 2:
        return None
    mean = total / n
    # Subtracting two large, nearly equal sums can round a zero variance below zero.
    variance = max(0.0, (total_sq - total * mean) / (n - 1))
    return mean, variance


def welch_t_test(
    mean1: float, var1: float, n1: int, mean2: float, var2: float, n2: int
) -> TTest | None:
    """Compare two means with Welch's two-sided t-test, or return None if a group has n < 2."""
    if var1 < 0 or var2 < 0:
        raise ValueError(f"variances must not be negative, got {var1!r} and {var2!r}")
    if n1 < 0 or n2 < 0:
        raise ValueError(f"sample sizes must not be negative, got {n1!r} and {n2!r}")
    # A sample variance needs two observations; with one, Welch's df divides by zero.
    if n1 < 2 or n2 < 2:
        return None
    diff = mean2 - mean1
    relative_diff = diff / mean1 if mean1 else None
    a, b = var1 / n1, var2 / n2
    se2 = a + b
    if se2 == 0:
        # Both groups are constant, so the Welch-Satterthwaite df is 0/0; report Student's df.
        # Equal constants: identical groups (p = 1). Different ones: certainly different (p = 0).
        t = 0.0 if diff == 0 else math.copysign(math.inf, diff)
        return TTest(
            diff=diff,
            relative_diff=relative_diff,
            t=t,
            df=float(n1 + n2 - 2),
            p_value=1.0 if diff == 0 else 0.0,
        )
    t = diff / math.sqrt(se2)
    df = se2 * se2 / (a * a / (n1 - 1) + b * b / (n2 - 1))  # Welch-Satterthwaite
    return TTest(diff=diff, relative_diff=relative_diff, t=t, df=df, p_value=t_two_sided_p(t, df))


def srm_chi_square(observed: list[int], expected_weights: list[float]) -> SRM | None:
    """Test group sizes against the configured split; None with under two groups or no units."""
    if len(observed) != len(expected_weights):
        raise ValueError(f"got {len(observed)} observed counts for {len(expected_weights)} weights")
    if any(count < 0 for count in observed):
        raise ValueError(f"observed counts must not be negative, got {observed!r}")
    if any(not weight > 0 or math.isinf(weight) for weight in expected_weights):
        raise ValueError(f"weights must be positive and finite, got {expected_weights!r}")
    total = sum(observed)
    # One group (a single-variant experiment) has no ratio to check; no units, no evidence.
    if len(observed) < 2 or total == 0:
        return None
    weight_sum = math.fsum(expected_weights)
    chi2 = 0.0
    for count, weight in zip(observed, expected_weights, strict=True):
        expected = total * weight / weight_sum
        chi2 += (count - expected) ** 2 / expected
    df = len(observed) - 1
    p_value = chi_square_sf(chi2, df)
    return SRM(chi2=chi2, df=df, p_value=p_value, mismatch=p_value < SRM_ALPHA)


# --- Special functions (after Numerical Recipes, 3rd ed., sections 6.2 and 6.4) ------------------


def _regularized_beta(a: float, b: float, x: float, y: float) -> float:
    """Return the regularized incomplete beta I_x(a, b), given x and y = 1 - x."""
    if x <= 0:
        return 0.0
    if y <= 0:
        return 1.0
    # log1p of the smaller of x and y: log(x) of an x near 1 would lose digits, times a large a.
    log_x = math.log1p(-y) if x > 0.5 else math.log(x)
    log_y = math.log1p(-x) if y > 0.5 else math.log(y)
    log_front = a * log_x + b * log_y - _log_beta(a, b)
    # The continued fraction converges fast only for x < (a + 1) / (a + b + 2); above that,
    # use the symmetry I_x(a, b) = 1 - I_{1-x}(b, a).
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, y) / b


def _log_beta(a: float, b: float) -> float:
    """Return log B(a, b) = lgamma(a) + lgamma(b) - lgamma(a + b)."""
    small, big = sorted((a, b))
    if big < _STIRLING_FROM:
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    # For Student's t with many degrees of freedom, big = df / 2 is huge and lgamma(big + small)
    # - lgamma(big) subtracts two numbers near big * log(big), losing up to ~1e-6 of the result.
    # Stirling's series for the difference keeps its terms small: log G(big + small) / G(big) =
    # small * log(big) + (big + small - 1/2) * log1p(small / big) - small + (correction terms).
    log_ratio = (
        small * math.log(big)
        + (big + small - 0.5) * math.log1p(small / big)
        - small
        + _stirling_correction(big + small)
        - _stirling_correction(big)
    )
    return math.lgamma(small) - log_ratio


def _stirling_correction(x: float) -> float:
    """Return lgamma(x) minus its Stirling approximation (x - 1/2) log x - x + log(2 pi) / 2."""
    # Truncated after the x^-7 term: the next is below 1e-20 for x >= _STIRLING_FROM.
    x2 = x * x
    return (1 / 12 - (1 / 360 - (1 / 1260 - 1 / (1680 * x2)) / x2) / x2) / x


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Evaluate the continued fraction of the incomplete beta function (modified Lentz)."""
    qab, qap, qam = a + b, a + 1, a - 1
    c = 1.0
    d = 1 - qab * x / qap
    d = 1 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _MAX_ITERATIONS + 1):
        m2 = 2 * m
        # Even step of the recurrence.
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > _TINY else _TINY)
        c = 1 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        # Odd step.
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > _TINY else _TINY)
        c = 1 + aa / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1) < _EPS:
            return h
    raise ArithmeticError(f"incomplete beta did not converge for a={a}, b={b}, x={x}")


def _regularized_gamma_upper(a: float, x: float) -> float:
    """Return the regularized upper incomplete gamma Q(a, x) for a > 0 and x > 0."""
    log_front = a * math.log(x) - x - math.lgamma(a)
    # The series converges fast for x < a + 1 and the continued fraction beyond it. In the
    # series region Q = 1 - P stays above 0.08 for df >= 1, so the subtraction costs about a digit.
    if x < a + 1:
        return 1.0 - _gamma_series(a, x, log_front)
    return _gamma_continued_fraction(a, x, log_front)


def _gamma_series(a: float, x: float, log_front: float) -> float:
    """Return the lower regularized incomplete gamma P(a, x) by its power series."""
    term = total = 1 / a
    ap = a
    for _ in range(_MAX_ITERATIONS):
        ap += 1
        term *= x / ap
        total += term
        if abs(term) < abs(total) * _EPS:
            return total * math.exp(log_front)
    raise ArithmeticError(f"incomplete gamma series did not converge for a={a}, x={x}")


def _gamma_continued_fraction(a: float, x: float, log_front: float) -> float:
    """Return the upper regularized incomplete gamma Q(a, x) by its continued fraction."""
    b = x + 1 - a
    c = 1 / _TINY
    d = 1 / b
    h = d
    for i in range(1, _MAX_ITERATIONS + 1):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = 1 / (d if abs(d) > _TINY else _TINY)
        c = b + an / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1) < _EPS:
            return h * math.exp(log_front)
    raise ArithmeticError(f"incomplete gamma fraction did not converge for a={a}, x={x}")


def _check_proportion(successes: int, n: int) -> None:
    """Raise ValueError unless 0 <= successes <= n."""
    if not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes!r}, n={n!r}")
