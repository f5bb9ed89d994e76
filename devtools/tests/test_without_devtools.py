"""The production image leaves devtools/ out (Dockerfile, INCLUDE_DEVTOOLS): the project must load
and pass its checks without the package, and only then lack the simulator's command."""

import subprocess
import sys

from devtools.processes import REPO

PROBE = """
import sys
{hide}
import django
from django.conf import settings
from django.core.management import call_command, get_commands
django.setup()
call_command("check")
print("devtools" in settings.INSTALLED_APPS, "llm_simulator" in get_commands())
"""


def probe(*, hide: bool) -> str:
    # sys.modules[name] = None makes importlib treat the package as absent (find_spec gives None).
    code = PROBE.format(hide="sys.modules['devtools'] = None" if hide else "")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split("\n")[-2]


def test_the_project_loads_without_devtools_and_has_no_simulator_command():
    assert probe(hide=True) == "False False"


def test_a_checkout_installs_devtools_for_the_simulator_command():
    assert probe(hide=False) == "True True"
