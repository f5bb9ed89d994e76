"""Deterministic canary assignment: which users an experiment enrolls, and which variant they see.

Every decision is a pure function of (salt, user id, configuration), so any process, on any
machine, at any time, assigns a user the same way without storing the assignment. Hashes are
SHA-256, never Python's ``hash()``, which is salted per process (PYTHONHASHSEED).

Enrollment and variant choice use two independent hashes (the salt suffixed ``:traffic`` and
``:variant``): raising the traffic percentage only adds users (a user enrolled at 10% is still
enrolled at 20%), and it never moves an enrolled user to another variant.
"""

import hashlib
import math

BUCKETS = 10_000  # 0.01% resolution for traffic percentages and variant weights

type Variants = list[tuple[str, float]]


def bucket_for(salt: str, unit_id: str | int, buckets: int = BUCKETS) -> int:
    """Return the stable bucket in ``range(buckets)`` for ``unit_id`` under ``salt``."""
    if buckets < 1:
        raise ValueError(f"buckets must be a positive integer, got {buckets!r}")
    # The id is formatted with str(), so 42 and "42" share a bucket whichever type a caller has.
    digest = hashlib.sha256(f"{salt}:{unit_id}".encode()).digest()
    # 64 bits modulo 10,000 buckets: the modulo bias is below 1e-15, far under sampling noise.
    return int.from_bytes(digest[:8], "big") % buckets


def is_enrolled(salt: str, user_id: str | int, traffic_percent: float) -> bool:
    """Return whether ``user_id`` falls inside the experiment's ``traffic_percent`` of users."""
    _check_traffic(traffic_percent)
    # A fixed threshold on a fixed bucket: a higher percentage enrolls a superset of users.
    return bucket_for(f"{salt}:traffic", user_id) < traffic_percent / 100 * BUCKETS


def choose_variant(salt: str, user_id: str | int, variants: Variants) -> str:
    """Return the key of the variant that ``user_id`` sees, in proportion to the weights."""
    _check_variants(variants)
    total = math.fsum(weight for _, weight in variants)
    # Scale the bucket onto [0, total) rather than normalising the weights, so 1:3 works as-is.
    point = bucket_for(f"{salt}:variant", user_id) / BUCKETS * total
    cumulative = 0.0
    for key, weight in variants:
        cumulative += weight
        if point < cumulative:
            return key
    # Rounding can leave the running sum a hair below ``total``: the last variant takes the rest.
    return variants[-1][0]


def assign(salt: str, user_id: str | int, traffic_percent: float, variants: Variants) -> str | None:
    """Return the variant key that ``user_id`` sees, or None when the user is not enrolled."""
    # Validate both settings before deciding, so a bad configuration fails for every user,
    # not only for the enrolled ones (which at 1% traffic could go unnoticed).
    _check_variants(variants)
    if not is_enrolled(salt, user_id, traffic_percent):
        return None
    return choose_variant(salt, user_id, variants)


def _check_traffic(traffic_percent: float) -> None:
    """Raise ValueError unless ``traffic_percent`` is a number from 0 to 100."""
    # The chained comparison is False for NaN, so NaN is rejected too.
    if isinstance(traffic_percent, bool) or not 0 <= traffic_percent <= 100:
        raise ValueError(f"traffic_percent must be between 0 and 100, got {traffic_percent!r}")


def _check_variants(variants: Variants) -> None:
    """Raise ValueError unless ``variants`` lists distinct keys with positive weights."""
    if not variants:
        raise ValueError("variants must list at least one (key, weight) pair")
    seen: set[str] = set()
    for key, weight in variants:
        if key in seen:
            raise ValueError(f"variant key {key!r} appears more than once")
        seen.add(key)
        # ``not weight > 0`` also rejects NaN; infinity would swallow every other variant.
        if isinstance(weight, bool) or not weight > 0 or math.isinf(weight):
            raise ValueError(f"variant {key!r} needs a positive, finite weight, got {weight!r}")
