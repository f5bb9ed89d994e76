"""Rendering deploy/kubernetes with `kubectl kustomize`, and small readers of what it renders,
for test_kubernetes.py."""

import functools
import os
import shutil
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = REPO / "deploy" / "kubernetes"
KUBECTL = shutil.which("kubectl")
WORKLOADS = ("Deployment", "StatefulSet", "Job")
# The keys that live in the Secret, never in the ConfigMap (.env.example).
SECRET_KEYS = {
    "SECRET_KEY",
    "AI_API_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "EMAIL_URL",
    "METRICS_TOKEN",
}


def kustomize(directory: Path) -> list[dict]:
    """Return the documents `kubectl kustomize DIRECTORY` renders (offline: no cluster)."""
    result = subprocess.run(
        [KUBECTL, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KUBECONFIG": os.devnull},
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@functools.cache
def render(variant: str) -> tuple:
    """The documents of an overlay; `production+all` adds every optional component to it."""
    if variant == "production+all":
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            # kustomize takes only relative paths to other kustomizations.
            def relative(*parts: str) -> str:
                return os.path.relpath(KUBERNETES.joinpath(*parts), tmp)

            spec = {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [relative("overlays", "production")],
                "components": [
                    relative("components", name) for name in ("nginx-service", "hpa-streams")
                ],
            }
            (Path(tmp) / "kustomization.yaml").write_text(yaml.safe_dump(spec))
            return tuple(kustomize(Path(tmp)))
    return tuple(kustomize(KUBERNETES / "overlays" / variant))


def of_kind(docs, kind: str) -> list[dict]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs, kind: str, name: str) -> dict:
    found = [doc for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def container(workload: dict, name: str, *, init: bool = False) -> dict:
    key = "initContainers" if init else "containers"
    found = [c for c in pod_spec(workload).get(key, []) if c["name"] == name]
    assert found, f"{workload['metadata']['name']} has no {key[:-1]} {name}"
    return found[0]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def all_containers(workload: dict) -> list[dict]:
    spec = pod_spec(workload)
    return spec.get("initContainers", []) + spec["containers"]


def config_of(docs, workload: dict) -> dict:
    """The data of the ConfigMap the workload's containers take their environment from."""
    names = {
        source["configMapRef"]["name"]
        for c in all_containers(workload)
        for source in c.get("envFrom", [])
        if "configMapRef" in source
    }
    assert len(names) == 1, names
    return named(docs, "ConfigMap", names.pop())["data"]


def selects(selector: dict, labels: dict) -> bool:
    """Whether a label selector (matchLabels, matchExpressions In/NotIn/Exists) matches."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        value, op = labels.get(expr["key"]), expr["operator"]
        if op == "In" and value not in expr["values"]:
            return False
        if op == "NotIn" and value in expr["values"]:
            return False
        if op == "Exists" and expr["key"] not in labels:
            return False
        if op == "DoesNotExist" and expr["key"] in labels:
            return False
    return True
