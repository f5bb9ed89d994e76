"""Canary assignment: stable across processes, accurate splits, monotone ramp-up, valid input."""

import ast
import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import bucketing
from experiments.bucketing import assign, bucket_for, choose_variant, is_enrolled

REPO_ROOT = Path(__file__).resolve().parents[2]
SALT = "canary-2026-prompt-v7"
HALVES = [("control", 50.0), ("treatment", 50.0)]
IDS = range(100_000)


def test_bucket_is_the_first_8_bytes_of_sha256_modulo_buckets():
    expected = int.from_bytes(hashlib.sha256(b"salt:user-1").digest()[:8], "big") % 10_000
    assert bucket_for("salt", "user-1") == expected
    # Pinned, so that a change of algorithm (which would reshuffle every running experiment)
    # cannot pass unnoticed.
    assert bucket_for("salt", 42) == 2_753
    assert bucket_for("salt", 42, buckets=100) == 53


def test_int_and_str_ids_share_a_bucket():
    assert bucket_for(SALT, 42) == bucket_for(SALT, "42")


def test_buckets_stay_in_range():
    assert all(0 <= bucket_for(SALT, i, buckets=7) < 7 for i in range(1_000))


def test_assignment_is_identical_in_processes_with_different_hash_seeds():
    # String ids and salts are what hash() randomises per process; int ids are included too.
    program = (
        "import json, sys\n"
        "from experiments.bucketing import assign\n"
        "assert 'django' not in sys.modules, 'bucketing must not import Django'\n"
        f"variants = {HALVES!r}\n"
        f"print(json.dumps([assign({SALT!r}, f'user-{{i}}', 30, variants) for i in range(1000)]"
        f" + [assign({SALT!r}, i, 30, variants) for i in range(1000)]))\n"
    )
    in_process = [assign(SALT, f"user-{i}", 30, HALVES) for i in range(1000)] + [
        assign(SALT, i, 30, HALVES) for i in range(1000)
    ]
    for seed in ("1", "2"):
        result = subprocess.run(
            [sys.executable, "-c", program],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert json.loads(result.stdout) == in_process, f"PYTHONHASHSEED={seed}"
    # The comparison means something only if both outcomes occur.
    assert {None, "control", "treatment"} <= set(in_process)


@pytest.mark.parametrize("traffic", [1, 10, 25, 50, 90])
def test_enrolled_share_is_within_one_point_of_the_traffic(traffic):
    enrolled = sum(is_enrolled(SALT, user_id, traffic) for user_id in IDS)
    assert abs(enrolled / len(IDS) * 100 - traffic) <= 1


def test_fractional_traffic_is_honoured():
    enrolled = sum(is_enrolled(SALT, user_id, 2.5) for user_id in IDS)
    assert abs(enrolled / len(IDS) * 100 - 2.5) <= 1


def test_equal_weights_split_within_one_point():
    treatment = sum(choose_variant(SALT, user_id, HALVES) == "treatment" for user_id in IDS)
    assert abs(treatment / len(IDS) * 100 - 50) <= 1


def test_unequal_weights_split_in_proportion():
    variants = [("a", 1.0), ("b", 1.0), ("c", 2.0)]
    counts = {"a": 0, "b": 0, "c": 0}
    for user_id in IDS:
        counts[choose_variant(SALT, user_id, variants)] += 1
    assert abs(counts["a"] / len(IDS) * 100 - 25) <= 1
    assert abs(counts["b"] / len(IDS) * 100 - 25) <= 1
    assert abs(counts["c"] / len(IDS) * 100 - 50) <= 1


def test_variants_split_evenly_among_the_enrolled():
    # With one hash for both decisions, the enrolled 10% would all land in the first variant.
    enrolled = [user_id for user_id in IDS if is_enrolled(SALT, user_id, 10)]
    treatment = sum(choose_variant(SALT, user_id, HALVES) == "treatment" for user_id in enrolled)
    # About 10,000 users: one standard deviation is 0.5 point.
    assert abs(treatment / len(enrolled) * 100 - 50) <= 2


def test_ramp_up_only_adds_users():
    at = {
        traffic: {user_id for user_id in range(20_000) if is_enrolled(SALT, user_id, traffic)}
        for traffic in (0, 10, 25, 100)
    }
    assert at[0] == set()
    assert at[10] < at[25] < at[100]
    assert at[100] == set(range(20_000))


def test_variant_is_unchanged_when_traffic_changes():
    enrolled = [user_id for user_id in range(20_000) if is_enrolled(SALT, user_id, 10)]
    for user_id in enrolled:
        variant = assign(SALT, user_id, 10, HALVES)
        assert variant == choose_variant(SALT, user_id, HALVES)
        assert assign(SALT, user_id, 25, HALVES) == variant
        assert assign(SALT, user_id, 100, HALVES) == variant


def test_not_enrolled_users_get_none():
    assert all(assign(SALT, user_id, 0, HALVES) is None for user_id in range(1_000))


def test_a_new_salt_enrolls_an_independent_set_of_users():
    first = {user_id for user_id in IDS if is_enrolled("experiment-a", user_id, 10)}
    second = {user_id for user_id in IDS if is_enrolled("experiment-b", user_id, 10)}
    # Independent 10% samples overlap on about 1% of users (1,000 of 100,000).
    assert 800 <= len(first & second) <= 1_200


def test_a_single_variant_takes_everyone():
    assert {choose_variant(SALT, user_id, [("only", 3.0)]) for user_id in range(1_000)} == {"only"}


@pytest.mark.parametrize("traffic", [-0.1, 100.01, math.nan, math.inf])
def test_traffic_outside_0_to_100_is_rejected(traffic):
    with pytest.raises(ValueError, match="traffic_percent must be between 0 and 100"):
        is_enrolled(SALT, 1, traffic)
    with pytest.raises(ValueError, match="traffic_percent must be between 0 and 100"):
        assign(SALT, 1, traffic, HALVES)


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ([], "at least one"),
        ([("a", 1.0), ("b", 0.0)], "positive, finite weight"),
        ([("a", 1.0), ("b", -1.0)], "positive, finite weight"),
        ([("a", math.nan)], "positive, finite weight"),
        ([("a", math.inf), ("b", 1.0)], "positive, finite weight"),
        ([("a", 1.0), ("a", 1.0)], "more than once"),
    ],
)
def test_invalid_variants_are_rejected(variants, message):
    with pytest.raises(ValueError, match=message):
        choose_variant(SALT, 1, variants)
    # Also for users outside the experiment, so a bad configuration cannot hide at low traffic.
    with pytest.raises(ValueError, match=message):
        assign(SALT, 1, 0, variants)


def test_non_positive_bucket_count_is_rejected():
    with pytest.raises(ValueError, match="buckets must be a positive integer"):
        bucket_for(SALT, 1, buckets=0)


def test_module_imports_the_standard_library_only():
    tree = ast.parse(Path(bucketing.__file__).read_text())
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
