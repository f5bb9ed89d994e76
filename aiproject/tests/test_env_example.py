""".env.example lists every environment variable the settings read (set, or commented out)."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SETTINGS = [REPO / "aiproject" / "settings.py", REPO / "aiproject" / "settings_env.py"]
EXAMPLE = REPO / ".env.example"

# settings_env.py's typed readers, and django-environ's Env called directly: env("NAME").
READERS = {
    "bounded",
    "choice",
    "env",
    "host_port",
    "limit",
    "mailers",
    "networks",
    "positive_int",
    "required",
    "seconds",
    "strict_bool",
    "time_zone",
}


def _is_os_environ(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "environ"
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


def _reads_a_variable(call: ast.Call) -> bool:
    """env.str(...), env.int(...), any env.<cast>(...); bounded(...) and the other readers;
    os.environ.get(...), os.getenv(...)."""
    func = call.func
    if isinstance(func, ast.Name):
        return func.id in READERS
    if isinstance(func, ast.Attribute):
        if isinstance(func.value, ast.Name) and func.value.id == "env":
            return func.attr != "read_env"  # loads a file, reads no one variable
        if _is_os_environ(func.value) and func.attr in {"get", "pop", "setdefault"}:
            return True
        return func.attr == "getenv" and isinstance(func.value, ast.Name) and func.value.id == "os"
    return False


def variables_read(source: str) -> tuple[set[str], list[str]]:
    """Return the names of the variables ``source`` reads, and the reads whose name is not a
    plain string (those inside settings_env's own readers, which take the name as an argument)."""
    names: set[str] = set()
    dynamic: list[str] = []

    def take(node: ast.AST, where: ast.AST) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)
        else:
            dynamic.append(f"line {where.lineno}: {ast.unparse(where)}")

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and _reads_a_variable(node):
            take(node.args[0] if node.args else node, node)
        elif isinstance(node, ast.Subscript) and _is_os_environ(node.value):
            take(node.slice, node)  # os.environ["NAME"]
        elif (
            isinstance(node, ast.Compare)
            and len(node.comparators) == 1
            and _is_os_environ(node.comparators[0])
            and isinstance(node.ops[0], ast.In | ast.NotIn)
        ):
            take(node.left, node)  # "NAME" in os.environ
    return names, dynamic


def names_in_example(text: str) -> set[str]:
    """``NAME=value`` lines and commented-out ``# NAME=value`` lines."""
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def settings_variables() -> set[str]:
    names: set[str] = set()
    for path in SETTINGS:
        found, dynamic = variables_read(path.read_text())
        names |= found
        if path.name == "settings.py":
            # settings.py names every variable it reads, so that this test can see it.
            assert not dynamic, f"settings.py reads a variable by a computed name: {dynamic}"
    return names


def test_env_example_lists_every_variable_the_settings_read():
    read = settings_variables()
    missing = sorted(read - names_in_example(EXAMPLE.read_text()))
    assert not missing, f".env.example misses {', '.join(missing)}: add each with a comment"


def test_the_collector_sees_every_way_the_settings_read_a_variable():
    # If the collector missed a form, the test above could not fail for a variable read that way.
    source = """
import os
A = env.str("ENV_STR", default="")
B = env.int("ENV_INT", default=1) + env.float("ENV_FLOAT", default=1.0)
C = env.bool("ENV_BOOL", default=False) or env.list("ENV_LIST", default=[])
D = env.db("ENV_DB") and env.path("ENV_PATH") and env("ENV_CALL")
E = bounded("BOUNDED", 1) + seconds("SECONDS", 1) + positive_int("POSITIVE_INT", 1)
F = choice("CHOICE", "a", ("a",)), limit("LIMIT", 1), strict_bool("STRICT_BOOL", False)
G = host_port("HOST_PORT"), networks("NETWORKS"), time_zone("TIME_ZONE", "UTC")
H = required("REQUIRED", debug=True, dev_default=""), mailers("MAILERS", "consolemail://")
I = os.environ.get("OS_GET"), os.environ["OS_ITEM"], "OS_IN" in os.environ, os.getenv("OS_GETENV")
J = env.read_env(path)  # loads a file: no variable
"""
    names, dynamic = variables_read(source)
    assert names == {
        "ENV_STR",
        "ENV_INT",
        "ENV_FLOAT",
        "ENV_BOOL",
        "ENV_LIST",
        "ENV_DB",
        "ENV_PATH",
        "ENV_CALL",
        "BOUNDED",
        "SECONDS",
        "POSITIVE_INT",
        "CHOICE",
        "LIMIT",
        "STRICT_BOOL",
        "HOST_PORT",
        "NETWORKS",
        "TIME_ZONE",
        "REQUIRED",
        "MAILERS",
        "OS_GET",
        "OS_ITEM",
        "OS_IN",
        "OS_GETENV",
    }
    assert not dynamic
    assert variables_read("X = env.int(NAME)\n")[1] == ["line 1: env.int(NAME)"]


def test_the_settings_variables_found_include_the_known_ones():
    # A collector that found nothing would pass the first test: check it finds these.
    assert {
        "DEBUG",
        "SECRET_KEY",
        "DATABASE_URL",
        "ENV_FILE",
        "SITE_URL",
        "EMAIL_URL",
        "CHAT_DRAIN_SECONDS",
        "QUOTA_COST_PER_DAY_USD",
        "MONITOR_METRICS_ADDRESS",
    } <= settings_variables()


def test_names_in_example_reads_set_and_commented_out_lines():
    text = "# A comment, not a NAME=\nSET=1\n# COMMENTED=2\nEMPTY=\n#SPACELESS=x\n"
    assert names_in_example(text) == {"SET", "COMMENTED", "EMPTY", "SPACELESS"}
