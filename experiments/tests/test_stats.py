"""Comparison statistics against closed forms, published tables and a reference implementation.

Table values carry three or four digits, hence relative tolerances of about 1e-3 there;
closed forms are checked to 1e-12.
"""

import ast
import dataclasses
import math
import statistics
import sys
from pathlib import Path

import pytest

from experiments import stats
from experiments.stats import (
    SRM,
    TTest,
    ZTest,
    chi_square_sf,
    mean_var,
    normal_cdf,
    normal_two_sided_p,
    srm_chi_square,
    t_two_sided_p,
    two_proportion_z_test,
    welch_t_test,
    wilson_interval,
)

# R's datasets::sleep (Student, 1908): extra hours of sleep under two drugs.
# `t.test(extra ~ group, data = sleep)` prints t = -1.8608, df = 17.776, p-value = 0.07939
# (R subtracts group 2 from group 1; here diff is group 2 minus group 1, so t is positive).
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


# --- Distributions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        (0.0, 0.5),
        (1.0, 0.8413447460685429),
        (-1.0, 0.15865525393145707),
        (1.959963984540054, 0.975),
        (-3.0, 0.0013498980316300946),
    ],
)
def test_normal_cdf(x, expected):
    assert normal_cdf(x) == pytest.approx(expected, rel=1e-12)


def test_normal_cdf_keeps_precision_deep_in_the_lower_tail():
    # 1 - Phi(10) would round to 0; the tail probability is 7.62e-24.
    assert normal_cdf(-10) == pytest.approx(7.619853024160527e-24, rel=1e-9)


def test_normal_two_sided_p():
    assert normal_two_sided_p(1.959963984540054) == pytest.approx(0.05, rel=1e-12)
    assert normal_two_sided_p(-2.5758293035489) == pytest.approx(0.01, rel=1e-12)
    assert normal_two_sided_p(0) == 1.0


@pytest.mark.parametrize("t", [0.0, 0.1, 1.0, 2.5, 12.706, 100.0])
def test_t_p_value_matches_closed_forms_for_1_2_and_4_df(t):
    # df = 1 is the Cauchy distribution; df = 2 and 4 have elementary CDFs too.
    assert t_two_sided_p(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), rel=1e-12)
    assert t_two_sided_p(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-12)
    x = t * t / (4 + t * t)
    assert t_two_sided_p(t, 4) == pytest.approx(1 - math.sqrt(x) * (1 + (1 - x) / 2), rel=1e-10)


@pytest.mark.parametrize(
    ("t", "df", "p"),
    [
        # Two-sided critical values from a t table.
        (12.706, 1, 0.05),
        (2.228, 10, 0.05),
        (3.169, 10, 0.01),
        (2.042, 30, 0.05),
        (2.750, 30, 0.01),
        (1.984, 100, 0.05),
        # P(|T_30| >= 2) = 0.054625
        (2.0, 30, 0.054625),
    ],
)
def test_t_p_value_matches_tables(t, df, p):
    assert t_two_sided_p(t, df) == pytest.approx(p, rel=1e-3)
    assert t_two_sided_p(-t, df) == t_two_sided_p(t, df)


def test_t_p_value_approaches_the_normal_as_df_grows():
    normal = normal_two_sided_p(2.0)
    gaps = [t_two_sided_p(2.0, df) - normal for df in (10, 100, 1_000, 10**5, 10**8, 10**12)]
    # Heavier tails than the normal at every df, shrinking towards it like 1/df.
    assert all(gap > 0 for gap in gaps[:-1])
    assert gaps == sorted(gaps, reverse=True)
    assert abs(gaps[3]) < 1e-5
    assert abs(gaps[-1]) < 1e-9


def test_t_p_value_takes_fractional_df():
    p = t_two_sided_p(2.0, 17.5)
    assert t_two_sided_p(2.0, 18) < p < t_two_sided_p(2.0, 17)


def test_t_p_value_edges():
    assert t_two_sided_p(0.0, 7) == 1.0
    assert t_two_sided_p(math.inf, 7) == 0.0
    with pytest.raises(ValueError, match="degrees of freedom must be positive"):
        t_two_sided_p(1.0, 0)


@pytest.mark.parametrize(
    ("x", "df", "p"),
    [
        (3.841, 1, 0.05),
        (6.635, 1, 0.01),
        (10.828, 1, 0.001),
        (5.991, 2, 0.05),
        (7.815, 3, 0.05),
        (9.488, 4, 0.05),
        (18.307, 10, 0.05),
        (124.342, 100, 0.05),
    ],
)
def test_chi_square_survival_matches_tables(x, df, p):
    assert chi_square_sf(x, df) == pytest.approx(p, rel=1e-3)


@pytest.mark.parametrize("x", [1e-6, 0.1, 1.0, 2.5, 15.0, 80.0])
def test_chi_square_survival_matches_closed_forms_for_1_and_2_df(x):
    assert chi_square_sf(x, 1) == pytest.approx(math.erfc(math.sqrt(x / 2)), rel=1e-12)
    assert chi_square_sf(x, 2) == pytest.approx(math.exp(-x / 2), rel=1e-12)


def test_chi_square_survival_edges():
    assert chi_square_sf(0.0, 3) == 1.0
    assert chi_square_sf(math.inf, 3) == 0.0
    with pytest.raises(ValueError, match="degrees of freedom must be positive"):
        chi_square_sf(1.0, 0)


# --- Wilson interval ---------------------------------------------------------------------------


def test_wilson_interval_for_81_of_263():
    # By hand: p = 0.30798, z^2/n = 0.014606, centre = 0.31075, half-width = 0.055461.
    low, high = wilson_interval(81, 263)
    assert low == pytest.approx(0.25529, abs=1e-5)
    assert high == pytest.approx(0.36621, abs=1e-5)


def test_wilson_interval_is_exact_at_the_extremes():
    low, high = wilson_interval(0, 10)
    assert low == 0.0
    # Upper bound for 0 of n: z^2 / (n + z^2) = 3.8415 / 13.8415.
    assert high == pytest.approx(0.27753, abs=1e-5)
    assert wilson_interval(10, 10) == (pytest.approx(1 - 0.27753, abs=1e-5), 1.0)


def test_wilson_interval_widens_with_confidence():
    low95, high95 = wilson_interval(81, 263)
    low99, high99 = wilson_interval(81, 263, confidence=0.99)
    assert low99 < low95 and high99 > high95


def test_wilson_interval_without_trials_is_none():
    assert wilson_interval(0, 0) is None


@pytest.mark.parametrize(("successes", "n"), [(-1, 10), (11, 10), (1, -1)])
def test_wilson_interval_rejects_impossible_counts(successes, n):
    with pytest.raises(ValueError, match="0 <= successes <= n"):
        wilson_interval(successes, n)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 95])
def test_wilson_interval_rejects_bad_confidence(confidence):
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        wilson_interval(5, 10, confidence)


# --- Two-proportion z-test ---------------------------------------------------------------------


def test_z_test_200_of_1000_against_260_of_1000():
    # Pooled p = 0.23, se = sqrt(0.23 * 0.77 * 2 / 1000) = 0.018820, z = 0.06 / se = 3.188.
    result = two_proportion_z_test(200, 1000, 260, 1000)
    assert result.diff == pytest.approx(0.06)
    assert result.relative_diff == pytest.approx(0.3)
    assert result.z == pytest.approx(3.1881, abs=1e-4)
    assert result.p_value == pytest.approx(0.001432, rel=1e-3)


def test_z_test_is_antisymmetric_in_the_groups():
    forward = two_proportion_z_test(200, 1000, 260, 1000)
    backward = two_proportion_z_test(260, 1000, 200, 1000)
    assert backward.z == pytest.approx(-forward.z)
    assert backward.p_value == pytest.approx(forward.p_value)


def test_z_test_of_identical_groups_has_p_1():
    result = two_proportion_z_test(50, 400, 50, 400)
    assert result == ZTest(diff=0.0, relative_diff=0.0, z=0.0, p_value=1.0)


@pytest.mark.parametrize(("s", "n"), [(0, 100), (100, 100)])
def test_z_test_when_both_groups_are_all_or_nothing(s, n):
    result = two_proportion_z_test(s, n, s, n)
    assert (result.z, result.p_value) == (0.0, 1.0)


def test_z_test_with_no_control_successes_has_no_relative_diff():
    result = two_proportion_z_test(0, 100, 5, 100)
    assert result.relative_diff is None
    assert result.diff == pytest.approx(0.05)
    assert 0 < result.p_value < 0.05


def test_z_test_with_an_empty_group_is_none():
    assert two_proportion_z_test(0, 0, 5, 100) is None
    assert two_proportion_z_test(5, 100, 0, 0) is None


def test_z_test_rejects_impossible_counts():
    with pytest.raises(ValueError, match="0 <= successes <= n"):
        two_proportion_z_test(101, 100, 5, 100)


# --- Welch's t-test ----------------------------------------------------------------------------


def test_mean_var_matches_statistics():
    mean, variance = mean_var(len(SLEEP_1), sum(SLEEP_1), sum(x * x for x in SLEEP_1))
    assert mean == pytest.approx(statistics.mean(SLEEP_1), rel=1e-12)
    assert variance == pytest.approx(statistics.variance(SLEEP_1), rel=1e-12)


def test_mean_var_never_returns_a_negative_variance():
    # Seven equal values: the sums' rounding makes total_sq - total * mean = -1.9e-17.
    values = [0.3] * 7
    assert mean_var(7, sum(values), sum(v * v for v in values)) == (pytest.approx(0.3), 0.0)


def test_mean_var_needs_two_observations():
    assert mean_var(0, 0.0, 0.0) is None
    assert mean_var(1, 5.0, 25.0) is None
    with pytest.raises(ValueError, match="n must not be negative"):
        mean_var(-1, 0.0, 0.0)


def test_welch_on_the_sleep_data_matches_r():
    sums = [(len(g), sum(g), sum(x * x for x in g)) for g in (SLEEP_1, SLEEP_2)]
    (mean1, var1), (mean2, var2) = (mean_var(*s) for s in sums)
    result = welch_t_test(mean1, var1, 10, mean2, var2, 10)
    assert result.diff == pytest.approx(1.58)
    assert result.relative_diff == pytest.approx(1.58 / 0.75)
    assert result.t == pytest.approx(1.8608, abs=1e-4)
    assert result.df == pytest.approx(17.776, abs=1e-3)
    assert result.p_value == pytest.approx(0.07939, rel=1e-3)


def test_welch_with_equal_sizes_and_variances_has_students_df():
    result = welch_t_test(10.0, 4.0, 16, 11.0, 4.0, 16)
    assert result.df == pytest.approx(30)
    # se = sqrt(4/16 + 4/16) = 0.7071, t = 1.4142; the p-value is Student's at 30 df.
    assert result.t == pytest.approx(math.sqrt(2))
    assert result.p_value == pytest.approx(t_two_sided_p(math.sqrt(2), 30), rel=1e-12)


def test_welch_df_reduces_to_the_varying_group_when_the_other_is_constant():
    result = welch_t_test(5.0, 0.0, 50, 6.0, 9.0, 10)
    assert result.df == pytest.approx(9)
    assert result.t == pytest.approx(1 / math.sqrt(0.9))


def test_welch_of_identical_groups_has_p_1():
    result = welch_t_test(3.0, 2.0, 40, 3.0, 2.0, 40)
    assert (result.diff, result.t, result.p_value) == (0.0, 0.0, 1.0)


def test_welch_of_constant_groups():
    same = welch_t_test(3.0, 0.0, 5, 3.0, 0.0, 7)
    assert (same.t, same.df, same.p_value) == (0.0, 10.0, 1.0)
    different = welch_t_test(3.0, 0.0, 5, 4.0, 0.0, 7)
    assert (different.t, different.p_value) == (math.inf, 0.0)


def test_welch_with_a_zero_control_mean_has_no_relative_diff():
    assert welch_t_test(0.0, 1.0, 20, 0.5, 1.0, 20).relative_diff is None


def test_welch_needs_two_observations_per_group():
    # One observation has no sample variance, and Welch's df would divide by n - 1 = 0.
    assert welch_t_test(1.0, 0.0, 1, 2.0, 1.0, 10) is None
    assert welch_t_test(1.0, 1.0, 10, 2.0, 0.0, 0) is None


def test_welch_rejects_impossible_input():
    with pytest.raises(ValueError, match="variances must not be negative"):
        welch_t_test(1.0, -1.0, 10, 2.0, 1.0, 10)
    with pytest.raises(ValueError, match="sample sizes must not be negative"):
        welch_t_test(1.0, 1.0, -10, 2.0, 1.0, 10)


# --- Sample-ratio mismatch ---------------------------------------------------------------------


def test_srm_of_an_exact_split():
    assert srm_chi_square([5_000, 5_000], [50, 50]) == SRM(
        chi2=0.0, df=1, p_value=1.0, mismatch=False
    )


def test_srm_of_5000_against_5400():
    # Expected 5,200 each: chi2 = 2 * 200^2 / 5200 = 15.385; P(chi2_1 >= 15.385) = 8.77e-5.
    result = srm_chi_square([5_000, 5_400], [50, 50])
    assert result.chi2 == pytest.approx(15.384615, rel=1e-6)
    assert result.df == 1
    assert result.p_value == pytest.approx(math.erfc(math.sqrt(result.chi2 / 2)), rel=1e-12)
    assert result.p_value < 0.001
    assert result.mismatch


def test_srm_uses_the_configured_weights():
    assert not srm_chi_square([1_020, 8_980], [10, 90]).mismatch
    assert srm_chi_square([1_000, 1_000, 2_000], [1, 1, 2]).chi2 == 0.0
    # The same counts against an even split are a glaring mismatch.
    assert srm_chi_square([1_020, 8_980], [50, 50]).mismatch


def test_srm_flags_only_below_one_in_a_thousand():
    # Expected 5,000 each: chi2 = 2 * d^2 / 5000, which crosses 10.828 between d = 164 and 165.
    below = srm_chi_square([5_000 - 164, 5_000 + 164], [1, 1])
    above = srm_chi_square([5_000 - 165, 5_000 + 165], [1, 1])
    assert below.p_value > 0.001 and not below.mismatch
    assert above.p_value < 0.001 and above.mismatch


def test_srm_without_units_or_a_second_group_is_none():
    assert srm_chi_square([0, 0], [50, 50]) is None
    assert srm_chi_square([1_000], [100]) is None
    assert srm_chi_square([], []) is None


@pytest.mark.parametrize(
    ("observed", "weights", "message"),
    [
        ([10, 20], [1, 1, 1], "observed counts for 3 weights"),
        ([-1, 20], [1, 1], "must not be negative"),
        ([10, 20], [1, 0], "positive and finite"),
        ([10, 20], [1, math.nan], "positive and finite"),
    ],
)
def test_srm_rejects_invalid_input(observed, weights, message):
    with pytest.raises(ValueError, match=message):
        srm_chi_square(observed, weights)


# --- Module ------------------------------------------------------------------------------------


def test_results_are_frozen():
    result = two_proportion_z_test(1, 10, 2, 10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.p_value = 0.0
    assert isinstance(welch_t_test(1.0, 1.0, 10, 2.0, 1.0, 10), TTest)


def test_module_imports_the_standard_library_only():
    tree = ast.parse(Path(stats.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported <= sys.stdlib_module_names
