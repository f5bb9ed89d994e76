"""experiments/stats.py against SciPy on random inputs.

stats.py computes its distributions with the standard library only (the app does not ship SciPy);
here every public function is compared with scipy.stats, which is a development dependency only
(requirements-dev.txt). Inputs are drawn from seeded generators, over a spread of sizes from the
smallest valid one to tens of millions, with the edge cases (0 or all successes, one group
constant, tiny and huge statistics) drawn on purpose.
"""

import math
import random

import numpy as np
import pytest
from scipy import stats as scipy_stats

from experiments import stats

SEED = 20261205
SIZES = [2, 3, 5, 10, 30, 100, 1_000, 10_000, 100_000, 10_000_000]
# Agreement asked of a p-value or a bound: 1e-9 relative; below 1e-300 both are "zero".
REL, ABS = 1e-9, 1e-300


def close(ours: float, theirs: float, rel: float = REL, abs_: float = ABS) -> bool:
    return math.isclose(ours, theirs, rel_tol=rel, abs_tol=abs_)


@pytest.fixture
def rng():
    return random.Random(SEED)


def test_normal_cdf_and_two_sided_p(rng):
    points = [0.0, 1e-12, -1e-12, 8.0, -8.0, 37.0, -37.0]
    points += [rng.uniform(-40, 40) for _ in range(300)]
    for x in points:
        assert close(stats.normal_cdf(x), scipy_stats.norm.cdf(x)), x
        assert close(stats.normal_two_sided_p(x), 2 * scipy_stats.norm.sf(abs(x))), x


def test_student_t_two_sided_p(rng):
    dfs = [0.5, 1, 1.5, 2, 3, 7.3, 29, 120, 1e4, 1e6, 1e8]
    dfs += [math.exp(rng.uniform(math.log(0.3), math.log(1e7))) for _ in range(200)]
    for df in dfs:
        scale = rng.choice([1e-6, 0.1, 1, 3, 10, 100])
        for t in (0.0, rng.gauss(0, scale), -abs(rng.gauss(0, scale))):
            expected = 2 * scipy_stats.t.sf(abs(t), df)
            assert close(stats.t_two_sided_p(t, df), expected), (t, df)


def test_student_t_beyond_a_billion_degrees_of_freedom_is_the_normal(rng):
    """Past 1e9 df stats.py switches to the normal: within 1e-8 of the t p-value (absolute), as
    its comment says."""
    for _ in range(50):
        df = 10 ** rng.uniform(9.1, 14)
        t = rng.uniform(-6, 6)
        expected = 2 * scipy_stats.t.sf(abs(t), df)
        assert abs(stats.t_two_sided_p(t, df) - expected) <= 1e-8, (t, df)


def test_chi_square_survival(rng):
    cases = [(0.0, 1), (1e-9, 1), (3.84, 1), (1000.0, 1), (1e4, 3), (0.5, 20)]
    for _ in range(300):
        df = rng.choice([1, 2, 3, 4, 5, 9, 19, 99, 999])
        mean = float(df)
        cases.append((rng.uniform(0, mean * rng.choice([0.1, 1, 3, 10])), df))
    for x, df in cases:
        assert close(stats.chi_square_sf(x, df), scipy_stats.chi2.sf(x, df)), (x, df)


@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95, 0.99, 0.999])
def test_wilson_interval(rng, confidence):
    for n in SIZES:
        for successes in {0, 1, n - 1, n, rng.randint(0, n), n // 2}:
            ours = stats.wilson_interval(successes, n, confidence)
            theirs = scipy_stats.binomtest(successes, n).proportion_ci(
                confidence_level=confidence, method="wilson"
            )
            assert ours is not None
            # Absolute: a bound near 0 is where rounding of centre - half_width shows.
            assert close(ours[0], theirs.low, abs_=1e-12), (successes, n, ours, theirs)
            assert close(ours[1], theirs.high, abs_=1e-12), (successes, n, ours, theirs)


def test_two_proportion_z_test_is_pearsons_chi_square_on_the_two_by_two_table(rng):
    """The pooled z-test squared is Pearson's chi-square of the 2x2 table (no continuity
    correction): the same p-value."""
    checked = 0
    for n1 in SIZES:
        for n2 in (n1, rng.choice(SIZES)):
            p1, p2 = rng.random(), rng.random()
            for s1, s2 in ((round(p1 * n1), round(p2 * n2)), (round(p1 * n1), round(p1 * n2))):
                result = stats.two_proportion_z_test(s1, n1, s2, n2)
                assert result is not None
                table = np.array([[s1, n1 - s1], [s2, n2 - s2]])
                if (table.sum(axis=0) == 0).any():
                    # A column of zeros (all succeeded or all failed): SciPy refuses the table,
                    # stats.py reports no difference.
                    assert (result.z, result.p_value) == (0.0, 1.0)
                    continue
                chi2, p_value, _, _ = scipy_stats.chi2_contingency(table, correction=False)
                assert close(result.z**2, chi2, rel=1e-9, abs_=1e-12), (s1, n1, s2, n2)
                assert close(result.p_value, p_value), (s1, n1, s2, n2)
                checked += 1
    assert checked > 20


def test_welch_from_stored_sums_matches_scipy_on_the_raw_samples(rng):
    """From the count, sum and sum of squares the app stores (mean_var) to Welch's test, against
    scipy's ttest_ind on the samples themselves."""
    np_rng = np.random.default_rng(SEED)
    for n1 in SIZES[:8]:
        n2 = rng.choice(SIZES[:8])
        x1 = np_rng.normal(rng.uniform(0, 5), rng.uniform(0.1, 3), n1)
        x2 = np_rng.normal(rng.uniform(0, 5), rng.uniform(0.1, 3), n2)
        m1, v1 = stats.mean_var(n1, float(x1.sum()), float((x1 * x1).sum()))
        m2, v2 = stats.mean_var(n2, float(x2.sum()), float((x2 * x2).sum()))
        assert close(m1, x1.mean(), rel=1e-12, abs_=1e-12)
        assert close(v1, x1.var(ddof=1), rel=1e-8)
        ours = stats.welch_t_test(m1, v1, n1, m2, v2, n2)
        theirs = scipy_stats.ttest_ind(x2, x1, equal_var=False)  # treatment minus control
        assert ours is not None
        assert close(ours.t, theirs.statistic, rel=1e-7), (n1, n2)
        assert close(ours.df, theirs.df, rel=1e-7), (n1, n2)
        assert close(ours.p_value, theirs.pvalue, rel=1e-6, abs_=1e-15), (n1, n2)


def test_welch_from_summary_statistics(rng):
    for _ in range(300):
        n1, n2 = rng.choice(SIZES), rng.choice(SIZES)
        m1, m2 = rng.uniform(-100, 100), rng.uniform(-100, 100)
        v1 = rng.choice([0.0, 1e-6, rng.uniform(0, 1e4)])
        v2 = rng.choice([1e-6, rng.uniform(0, 1e4)])  # one constant group at most
        if rng.random() < 0.3:
            m2 = m1 + rng.gauss(0, 1e-3)  # nearly equal means: p near 1
        ours = stats.welch_t_test(m1, v1, n1, m2, v2, n2)
        theirs = scipy_stats.ttest_ind_from_stats(
            m2, math.sqrt(v2), n2, m1, math.sqrt(v1), n1, equal_var=False
        )
        assert ours is not None
        assert close(ours.t, theirs.statistic, rel=1e-12), (m1, v1, n1, m2, v2, n2)
        # (ttest_ind_from_stats gives no df: the test above checks it against ttest_ind's.)
        assert close(ours.p_value, theirs.pvalue), (m1, v1, n1, m2, v2, n2)


def test_srm_chi_square(rng):
    for _ in range(300):
        groups = rng.choice([2, 2, 3, 4, 6])
        weights = [rng.choice([1.0, 2.0, 0.5, rng.uniform(0.01, 10)]) for _ in range(groups)]
        total = rng.choice(SIZES)
        shares = [w / sum(weights) for w in weights]
        if rng.random() < 0.5:  # assigned as configured, give or take the noise
            observed = [round(total * share) for share in shares]
            observed = [max(0, o + rng.randint(-3, 3)) for o in observed]
        else:  # anything at all, a broken assignment included
            observed = [rng.randint(0, total) for _ in range(groups)]
        if sum(observed) == 0:
            observed[0] = 1
        result = stats.srm_chi_square(observed, weights)
        assert result is not None
        expected = [sum(observed) * share for share in shares]
        theirs = scipy_stats.chisquare(observed, f_exp=expected)
        assert close(result.chi2, theirs.statistic, rel=1e-9, abs_=1e-9), (observed, weights)
        assert result.df == groups - 1
        assert close(result.p_value, theirs.pvalue), (observed, weights)
        assert result.mismatch == (theirs.pvalue < stats.SRM_ALPHA)


def test_scipy_is_a_development_dependency_only():
    """The app's image installs requirements.txt alone (Dockerfile); SciPy and NumPy stay out."""
    from devtools.processes import REPO

    runtime = (REPO / "requirements.txt").read_text().lower().splitlines()
    development = (REPO / "requirements-dev.txt").read_text().lower().splitlines()
    for package in ("scipy", "numpy"):
        assert not any(line.startswith(package) for line in runtime), package
        assert any(line.startswith(f"{package}==") for line in development), package
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "requirements-dev" not in dockerfile
