"""The layer rule: imports point only downward, and no two parts import each other.

    aiproject (settings, urls, asgi: wiring)  ->  chat  ->  experiments
        ->  alerts, quotas (sub-apps inside analytics/)  ->  analytics  ->  core

and devtools (development tools, not in the production image) above them all: imported by none.

The sub-apps ``analytics.alerts`` and ``analytics.quotas`` are parts of their own, one level above
the rest of ``analytics``: they read its models and listen to its signals (``call_recorded``);
analytics imports neither. They do not import each other.

Every production module's imports are read with ``ast`` (function-level imports included, relative
ones resolved: ``from ..models import AICall`` in analytics/quotas/ is ``analytics.models``; tests
and migrations are left out), and a violation names the module, the line and the import. Runs
without Django or a database: ``.venv/bin/python -m pytest core/tests/test_layers.py``, or
``.venv/bin/python core/tests/test_layers.py`` to print the violations.
"""

import ast
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Higher imports lower; parts of one level must not form a cycle. The entry is imported by none.
# devtools (the simulator, the tests' and benches' helpers) sits above it: the production image
# leaves it out, so no production module may import it.
LEVELS = {
    "core": 0,
    "analytics": 1,
    "alerts": 2,
    "quotas": 2,
    "experiments": 3,
    "chat": 4,
    "aiproject": 5,
    "devtools": 6,
}
# The package of each part; a module belongs to the part of its longest matching package.
PACKAGES = {
    "core": "core",
    "analytics": "analytics",
    "analytics.alerts": "alerts",
    "analytics.quotas": "quotas",
    "experiments": "experiments",
    "chat": "chat",
    "aiproject": "aiproject",
    "devtools": "devtools",
}
SKIPPED_DIRS = {"tests", "migrations"}  # test helpers may reach across layers; so may migrations


def part_of(module: str) -> str | None:
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        if (part := PACKAGES.get(".".join(parts[:end]))) is not None:
            return part
    return None


def production_modules(root: Path = ROOT) -> Iterable[tuple[str, Path]]:
    for top in (package for package in PACKAGES if "." not in package):
        for path in sorted((root / top).rglob("*.py")):
            relative = path.relative_to(root)
            if SKIPPED_DIRS.intersection(relative.parts[:-1]):
                continue
            yield ".".join(relative.with_suffix("").parts).removesuffix(".__init__"), path


def imports_of(path: Path, module: str = "") -> list[tuple[int, str]]:
    """The imports anywhere in the file, relative ones made absolute from ``module``'s name
    (a relative import may leave a sub-app: ``from ..models`` in analytics/quotas/)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *base.split(".")])
            if base := base.strip("."):
                found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def import_graph(root: Path = ROOT) -> dict[str, list[tuple[int, str]]]:
    """``{module: [(line, imported name), ...]}`` of every production module."""
    return {module: imports_of(path, module) for module, path in production_modules(root)}


def violations(graph: Mapping[str, Iterable[tuple[int, str]]]) -> list[str]:
    """Upward imports (an import of the entry included), then cycles between parts."""
    found = []
    edges: dict[str, set[str]] = {part: set() for part in LEVELS}
    for module, imports in graph.items():
        source = part_of(module)
        for line, name in imports:
            target = part_of(name)
            if source is None or target is None or target == source:
                continue
            if LEVELS[target] > LEVELS[source]:
                found.append(f"{module}:{line} imports {name} ({source} is below {target})")
            edges[source].add(target)
    found += [f"cycle: {' -> '.join(cycle)}" for cycle in _cycles(edges)]
    return found


def _cycles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """One cycle through each part that can reach itself (depth-first search)."""
    cycles = []
    for start in sorted(edges):
        stack = [(start, [start])]
        seen = set()
        while stack:
            node, path = stack.pop()
            for target in sorted(edges.get(node, ())):
                if target == start:
                    cycles.append([*path, start])
                    stack.clear()
                    break
                if target not in seen:
                    seen.add(target)
                    stack.append((target, [*path, target]))
    return cycles


def test_the_project_imports_only_downward_without_cycles():
    graph = import_graph()
    assert "core.health" in graph and "chat.runner" in graph  # the walk finds the modules
    assert "chat.tests.outages" not in graph
    assert violations(graph) == []


def test_every_app_has_a_layer():
    """A new Django app (top-level or a sub-app) must be placed in PACKAGES and LEVELS, or the
    rule would not see it."""
    found = [*ROOT.glob("*/apps.py"), *ROOT.glob("*/*/apps.py")]
    apps = {".".join(path.parent.relative_to(ROOT).parts) for path in found}
    assert {"analytics.alerts", "analytics.quotas"} <= apps
    assert apps - PACKAGES.keys() == set(), "add the app to PACKAGES in core/tests/test_layers.py"
    assert set(PACKAGES.values()) == LEVELS.keys()


def test_analytics_imports_none_of_its_sub_apps(tmp_path):
    """analytics announces a recorded call (a signal) and quotas listen: an import of a sub-app
    from analytics, absolute or relative, is upward; the sub-apps' relative imports of analytics
    are not."""
    for name, text in {
        "analytics/__init__.py": "",
        "analytics/services.py": "from . import quotas\nfrom .alerts.notify import notify\n",
        "analytics/jobs.py": "def f():\n    from analytics.quotas import charge\n",
        "analytics/quotas/__init__.py": "",
        "analytics/quotas/meters.py": "from ..models import AICall\nfrom .limits import Limits\n",
        "analytics/alerts/alerting.py": "from analytics.rollups import floor_hour\n",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path)
    assert graph["analytics.quotas.meters"] == [
        (1, "analytics.models.AICall"),
        (2, "analytics.quotas.limits.Limits"),
    ]
    assert violations(graph) == [
        "analytics.jobs:2 imports analytics.quotas.charge (analytics is below quotas)",
        "analytics.services:1 imports analytics.quotas (analytics is below quotas)",
        "analytics.services:2 imports analytics.alerts.notify.notify (analytics is below alerts)",
        "cycle: alerts -> analytics -> alerts",
        "cycle: analytics -> quotas -> analytics",
        "cycle: quotas -> analytics -> quotas",
    ]


def test_an_upward_import_is_found_at_its_line():
    graph = {
        "core.health": [(3, "django.conf.settings"), (9, "analytics.metrics.REGISTRY")],
        "analytics.jobs": [(1, "experiments.guardrails.check_guardrails")],
        "experiments.selectors": [(118, "chat.models.Message")],
        "chat.apps": [(2, "aiproject.middleware")],
        "chat.api": [(5, "experiments.services"), (6, "core.errors")],
    }
    found = violations(graph)
    assert found[:4] == [
        "core.health:9 imports analytics.metrics.REGISTRY (core is below analytics)",
        "analytics.jobs:1 imports experiments.guardrails.check_guardrails "
        "(analytics is below experiments)",
        "experiments.selectors:118 imports chat.models.Message (experiments is below chat)",
        "chat.apps:2 imports aiproject.middleware (chat is below aiproject)",
    ]
    assert "cycle: chat -> experiments -> chat" in found


def test_a_cycle_between_parts_of_one_level_is_found():
    graph = {
        "analytics.alerts.notify": [(1, "analytics.quotas.status.user_status")],
        "analytics.quotas.limits": [(1, "analytics.alerts.models.AlertRule")],
    }
    assert violations(graph) == [
        "cycle: alerts -> quotas -> alerts",
        "cycle: quotas -> alerts -> quotas",
    ]


def test_function_level_imports_are_read(tmp_path):
    module = tmp_path / "core" / "late.py"
    module.parent.mkdir()
    module.write_text("def f():\n    from chat.models import Message\n    return Message\n")
    (tmp_path / "core" / "tests").mkdir()
    (tmp_path / "core" / "tests" / "test_x.py").write_text("import chat\n")
    graph = import_graph(tmp_path)
    assert graph == {"core.late": [(2, "chat.models.Message")]}
    assert violations(graph)[0] == "core.late:2 imports chat.models.Message (core is below chat)"


if __name__ == "__main__":
    problems = violations(import_graph())
    print("\n".join(problems) or "No upward import, no cycle.")
    sys.exit(1 if problems else 0)
