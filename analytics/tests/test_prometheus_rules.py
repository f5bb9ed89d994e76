"""ops/prometheus/alerts.yml: valid for Prometheus, and its unit tests pass (promtool)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[2] / "ops" / "prometheus"
PROMTOOL = shutil.which("promtool")
if PROMTOOL is None and os.environ.get("CI") == "true":
    raise RuntimeError("CI=true but promtool is missing: .ci/run installs Debian's prometheus")
pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)"
)


def promtool(*args: str) -> subprocess.CompletedProcess:
    # 7 s on a quiet machine; over 60 s measured with the suite on 3 workers at load 13.
    return subprocess.run([PROMTOOL, *args], cwd=RULES, capture_output=True, text=True, timeout=300)


def test_rules_are_valid():
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 rules found" in result.stdout  # the five of analytics.alerts.alerting + dependencies


def test_rule_unit_tests_pass():
    result = promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_use_series_the_app_exports():
    from analytics import metrics

    exported = {
        sample_family.name
        for collector in metrics.REGISTRY._collector_to_names
        for sample_family in collector.describe()
    }
    text = (RULES / "alerts.yml").read_text()
    for name in (
        "aiproject_ai_calls",
        "aiproject_ai_cost_usd",
        "gen_ai_client_token_usage",
        "gen_ai_client_operation_duration_seconds",
        "aiproject_http_requests",
        "aiproject_dependency_up",
    ):
        assert name in exported and name in text
