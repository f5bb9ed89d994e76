"""The Kubernetes manifests (deploy/kubernetes, docs/kubernetes.md): every overlay rendered by
`kubectl kustomize`, each document validated against the Kubernetes schemas that
kubernetes-validate ships (offline), and what the deployment relies on checked in what an apply
would send: probes, the drain time, the SSE settings, the security context, the disruption
budget, the autoscaler, the network policies and where the keys live. No cluster is involved."""

import os
import re
import shutil
import subprocess

import kubernetes_validate
import pytest

from core.metrics import SSE_STREAMS_OPEN

from .kubernetes_render import (
    KUBECTL,
    KUBERNETES,
    REPO,
    SECRET_KEYS,
    WORKLOADS,
    all_containers,
    config_of,
    container,
    named,
    of_kind,
    pod_spec,
    render,
    selects,
)

if KUBECTL is None:
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI=true but kubectl is not installed: .ci/run must check for it")
    pytestmark = pytest.mark.skip(reason="kubectl not installed (it renders the manifests)")

VARIANTS = ["production", "demo", "production+all"]
# The newest Kubernetes whose schemas the pinned kubernetes-validate ships.
KUBERNETES_VERSION = kubernetes_validate.utils.latest_version()
STREAM = "/api/messages/12/stream"
POSTS = ("/api/conversations/3/messages", "/api/messages/4/regenerate")


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_document_is_valid_for_the_newest_kubernetes_schemas(variant):
    docs = render(variant)
    assert KUBERNETES_VERSION == "1.37.0"
    errors = []
    for doc in docs:
        try:
            # strict: a field the schema does not know (a typo) is an error too.
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {error.message}")
    assert not errors, "\n".join(errors)
    kinds = {doc["kind"] for doc in docs}
    expected = {"Namespace", "Deployment", "Job", "Service", "ConfigMap", "PodDisruptionBudget"}
    assert expected | {"HorizontalPodAutoscaler", "NetworkPolicy"} <= kinds


def test_a_schema_violation_is_reported():
    """The validation above can fail: a misspelt field and a wrong type are both caught."""
    web = named(render("production"), "Deployment", "aiproject-web")
    typo = {**web, "spec": {**web["spec"], "replica": 2}}
    wrong_type = {**web, "spec": {**web["spec"], "minReadySeconds": "soon"}}
    for broken in (typo, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("variant", VARIANTS)
def test_web_probes_liveness_healthz_and_readiness_readyz(variant):
    web = container(named(render(variant), "Deployment", "aiproject-web"), "web")
    port = {p["name"]: p["containerPort"] for p in web["ports"]}
    assert port == {"http": 8000}
    assert web["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert web["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert web["startupProbe"]["httpGet"]["path"] == "/healthz"


def prestop_seconds(web: dict) -> int:
    prestop = web["lifecycle"]["preStop"]
    if "sleep" in prestop:
        return int(prestop["sleep"]["seconds"])
    command = prestop["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2, command
    return int(command[1])


@pytest.mark.parametrize("variant", VARIANTS)
def test_termination_grace_covers_prestop_drain_and_shutdown_grace(variant):
    """Kubernetes kills a pod terminationGracePeriodSeconds after its deletion began, preStop
    included: it must outlast the preStop sleep, the drain and the interrupt grace."""
    docs = render(variant)
    deployment = named(docs, "Deployment", "aiproject-web")
    config = config_of(docs, deployment)
    # Set explicitly, so that the arithmetic below reads the values the pods get.
    drain = int(config["CHAT_DRAIN_SECONDS"])
    grace = int(config["CHAT_SHUTDOWN_GRACE_SECONDS"])
    sleep = prestop_seconds(container(deployment, "web"))
    assert sleep >= 1
    # A couple of seconds more: the process stores the interrupted replies, then exits.
    needed = sleep + drain + grace + 2
    assert pod_spec(deployment)["terminationGracePeriodSeconds"] >= needed
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_container_is_non_root_read_only_and_unprivileged(variant):
    docs = render(variant)
    workloads = [doc for doc in docs if doc["kind"] in WORKLOADS]
    assert len(workloads) >= 4
    for workload in workloads:
        spec = pod_spec(workload)
        pod_context = spec.get("securityContext", {})
        assert spec.get("automountServiceAccountToken") is False, workload["metadata"]["name"]
        for c in all_containers(workload):
            where = f"{workload['metadata']['name']}/{c['name']}"
            context = {**pod_context, **c.get("securityContext", {})}
            assert context.get("runAsNonRoot") is True, where
            assert context.get("runAsUser", 0) > 0, where  # numeric: the kubelet can check it
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where
            assert context.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            resources = c.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), where
            assert "memory" in resources.get("limits", {}), where
    for namespace in of_kind(docs, "Namespace"):
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def runs_the_app(c: dict) -> bool:
    """Whether the container runs the app's image (or its devtools build)."""
    return c["image"].split(":")[0].endswith(("/aiproject", "/aiproject-devtools"))


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_apps_writable_paths_are_volumes(variant):
    """The root filesystem is read-only: /tmp (Python's temporary files, the monitor's
    heartbeat) is an emptyDir in every container of the app's image."""
    docs = render(variant)
    for workload in docs:
        if workload["kind"] not in WORKLOADS:
            continue
        empty_dirs = {v["name"] for v in pod_spec(workload).get("volumes", []) if "emptyDir" in v}
        for c in all_containers(workload):
            if not runs_the_app(c):
                continue
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            assert mounts.get("/tmp") in empty_dirs, f"{workload['metadata']['name']}/{c['name']}"
    monitor = container(named(docs, "Deployment", "aiproject-monitor"), "monitor")
    env = {e["name"]: e["value"] for e in monitor["env"]}
    assert env["MONITOR_HEARTBEAT_FILE"].startswith("/tmp/")
    check = ["python", "manage.py", "monitor", "--check-heartbeat", "--max-age", "60"]
    assert monitor["livenessProbe"]["exec"]["command"] == check
    assert monitor["command"] == ["python", "manage.py", "monitor"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_migrations_run_once_in_a_job_and_the_pods_wait_for_them(variant):
    docs = render(variant)
    job = container(named(docs, "Job", "aiproject-migrate"), "migrate")
    assert job["command"] == ["python", "manage.py", "migrate", "--noinput"]
    for name in ("aiproject-web", "aiproject-monitor"):
        wait = container(named(docs, "Deployment", name), "wait-for-migrations", init=True)
        assert "manage.py migrate --check" in " ".join(wait["command"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_web_has_a_disruption_budget_and_an_autoscaler(variant):
    docs = render(variant)
    web_labels = named(docs, "Deployment", "aiproject-web")["spec"]["template"]["metadata"]
    budget = named(docs, "PodDisruptionBudget", "aiproject-web")["spec"]
    assert selects(budget["selector"], web_labels["labels"])
    assert budget.get("maxUnavailable") == 1 or budget.get("minAvailable", 0) >= 1
    hpa = named(docs, "HorizontalPodAutoscaler", "aiproject-web")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "aiproject-web",
    }
    assert hpa["minReplicas"] >= 2 and hpa["maxReplicas"] > hpa["minReplicas"]
    metrics = {m["type"]: m for m in hpa["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    # The autoscaler owns the replica count: a `replicas` in the Deployment would reset it.
    assert "replicas" not in named(docs, "Deployment", "aiproject-web")["spec"]
    if variant == "production+all":
        pods = metrics["Pods"]["pods"]
        # The gauge each web process serves at /metrics (core/metrics.py).
        assert pods["metric"]["name"] == SSE_STREAMS_OPEN._name == "aiproject_sse_streams_open"
        assert pods["target"]["type"] == "AverageValue"


def nginx_conf_locations() -> list[str]:
    text = (REPO / "nginx" / "nginx.conf").read_text()
    return re.findall(r"location ~ \^(\S+)\$ \{", text)


def ingress_for(docs, path: str) -> dict:
    """The Ingress whose regex (or exact) path matches ``path`` the way ingress-nginx would."""
    found = []
    for ingress in of_kind(docs, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                regex = p["pathType"] == "ImplementationSpecific" and re.match(p["path"], path)
                if regex or (p["pathType"] == "Exact" and p["path"] == path):
                    found.append(ingress)
    assert len(found) == 1, f"{path}: {[i['metadata']['name'] for i in found]}"
    return found[0]


@pytest.mark.parametrize("variant", ["production", "production+all"])
def test_ingress_nginx_streams_unbuffered_with_a_long_read_timeout(variant):
    docs = render(variant)
    ping = int(
        config_of(docs, named(docs, "Deployment", "aiproject-web")).get("SSE_PING_SECONDS", 15)
    )
    prefix = "nginx.ingress.kubernetes.io/"
    stream = ingress_for(docs, STREAM)["metadata"]["annotations"]
    assert stream[prefix + "proxy-buffering"] == "off"
    assert int(stream[prefix + "proxy-read-timeout"]) >= 4 * ping
    assert int(stream[prefix + "proxy-send-timeout"]) >= 4 * ping
    assert "http_503" in stream[prefix + "proxy-next-upstream"].split()
    for post in POSTS:
        retry = ingress_for(docs, post)["metadata"]["annotations"][prefix + "proxy-next-upstream"]
        assert {"http_503", "non_idempotent"} <= set(retry.split())
    readyz = ingress_for(docs, "/readyz")["metadata"]["annotations"]
    assert "10.0.0.0/8" in readyz[prefix + "whitelist-source-range"]
    # The same paths as nginx.conf's locations, so the two ways in cannot drift apart.
    ingress_paths = {
        p["path"].removesuffix("$")
        for ingress in of_kind(docs, "Ingress")
        for rule in ingress["spec"]["rules"]
        for p in rule["http"]["paths"]
        if p["pathType"] == "ImplementationSpecific"
    }
    assert ingress_paths == set(nginx_conf_locations())
    static = [
        p["backend"]["service"]["name"]
        for ingress in of_kind(docs, "Ingress")
        for rule in ingress["spec"]["rules"]
        for p in rule["http"]["paths"]
        if p["path"] == "/static/"
    ]
    assert static == ["aiproject-proxy"]


# The lines of nginx/nginx.conf that the cluster's copy replaces, and what replaces them.
NGINX_REPLACED = {
    "resolver 127.0.0.11 valid=5s ipv6=off;": "resolver @RESOLVER@ valid=5s ipv6=off;",
    "listen 80;": "listen 8080;",
    "set $app_upstream web:8000;": (
        "set $app_upstream aiproject-web-headless.@NAMESPACE@.svc.@CLUSTER_DOMAIN@:8000;"
    ),
}
NGINX_ADDED = {
    "pid /tmp/nginx.pid;",
    "client_body_temp_path /tmp/client_body;",
    "proxy_temp_path /tmp/proxy;",
    "fastcgi_temp_path /tmp/fastcgi;",
    "uwsgi_temp_path /tmp/uwsgi;",
    "scgi_temp_path /tmp/scgi;",
}


def directives(text: str) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


@pytest.mark.parametrize("variant", ["demo", "production+all"])
def test_plain_nginx_variant_is_nginx_conf_with_only_the_clusters_changes(variant, tmp_path):
    docs = render(variant)
    service = named(docs, "Service", "aiproject-proxy")["spec"]
    assert service["type"] == "LoadBalancer" and service["externalTrafficPolicy"] == "Local"
    proxy = named(docs, "Deployment", "aiproject-proxy")
    volume = next(v for v in pod_spec(proxy)["volumes"] if "configMap" in v)
    conf = named(docs, "ConfigMap", volume["configMap"]["name"])["data"]["nginx.conf"]
    original = directives((REPO / "nginx" / "nginx.conf").read_text())
    expected = [NGINX_REPLACED.get(line, line) for line in original]
    cluster = directives(conf)
    assert [line for line in cluster if line not in NGINX_ADDED] == expected
    assert set(cluster) >= NGINX_ADDED
    # The start command fills in every placeholder the file has.
    script = " ".join(container(proxy, "nginx")["command"])
    for placeholder in set(re.findall(r"@[A-Z_]+@", conf)):
        assert f"s/{placeholder}/" in script
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    if nginx is None:
        return  # test_nginx.py fails in CI without nginx; the structure is checked above
    filled = conf.replace("@RESOLVER@", "127.0.0.1").replace("@NAMESPACE@", "aiproject")
    (tmp_path / "nginx.conf").write_text(filled.replace("@CLUSTER_DOMAIN@", "cluster.local"))
    checked = subprocess.run(
        [nginx, "-t", "-c", str(tmp_path / "nginx.conf"), "-e", "/dev/stderr"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stderr


def allowed_ports(docs, labels: dict) -> set[int]:
    """TCP ports on which some NetworkPolicy lets traffic into pods with these labels."""
    ports = set()
    for policy in of_kind(docs, "NetworkPolicy"):
        if selects(policy["spec"]["podSelector"], labels):
            for rule in policy["spec"].get("ingress", []):
                ports |= {p["port"] for p in rule.get("ports", [])}
    return ports


@pytest.mark.parametrize("variant", VARIANTS)
def test_network_policies_deny_by_default_and_open_each_served_port(variant):
    docs = render(variant)
    policies = {p["metadata"]["name"]: p["spec"] for p in of_kind(docs, "NetworkPolicy")}
    deny = policies["aiproject-default-deny"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    for workload in docs:
        if workload["kind"] not in ("Deployment", "StatefulSet"):
            continue
        labels = workload["spec"]["template"]["metadata"]["labels"]
        served = {
            p["containerPort"] for c in pod_spec(workload)["containers"] for p in c.get("ports", [])
        }
        assert served <= allowed_ports(docs, labels), workload["metadata"]["name"]
    web = policies["aiproject-web-ingress"]
    assert all(rule.get("from") for rule in web["ingress"]), "the web pods are open to everyone"


@pytest.mark.parametrize("variant", VARIANTS)
def test_keys_are_in_secrets_that_hold_no_real_values(variant):
    docs = render(variant)
    app_workloads = [
        w for w in docs if w["kind"] in WORKLOADS and any(map(runs_the_app, all_containers(w)))
    ]
    assert len(app_workloads) >= 3
    for workload in app_workloads:
        config = config_of(docs, workload)
        assert not SECRET_KEYS & set(config), workload["metadata"]["name"]
        secrets = {
            s["secretRef"]["name"]
            for c in all_containers(workload)
            for s in c.get("envFrom", [])
            if "secretRef" in s
        }
        assert len(secrets) == 1 and secrets.pop().startswith("aiproject-secrets")
    secrets = of_kind(docs, "Secret")
    if variant.startswith("production"):
        # Created by hand (docs/kubernetes.md): an apply must never overwrite the real keys.
        assert secrets == []
    for secret in secrets:
        for key, value in secret.get("stringData", {}).items() | _decoded(secret).items():
            assert "demo" in value, f"{secret['metadata']['name']}.{key} looks like a real value"
            assert not re.search(r"sk-[A-Za-z0-9_-]{16,}", value)
    example = (KUBERNETES / "secrets.env.example").read_text()
    assert {
        line.split("=")[0] for line in example.splitlines() if "=" in line and line[0] != "#"
    } == SECRET_KEYS


def _decoded(secret: dict) -> dict:
    import base64

    return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_image_is_set_by_the_overlay(variant):
    for workload in render(variant):
        if workload["kind"] in WORKLOADS:
            for c in all_containers(workload):
                name, _, tag = c["image"].rpartition(":")
                assert name and tag and "/" not in tag, c["image"]
                assert name not in {"aiproject", "aiproject-proxy", "aiproject-devtools"}, c[
                    "image"
                ]
    if variant == "demo":
        simulator = container(
            named(render(variant), "Deployment", "aiproject-simulator"), "simulator"
        )
        assert simulator["image"].split(":")[0].endswith("/aiproject-devtools")
        config = config_of(render(variant), named(render(variant), "Deployment", "aiproject-web"))
        assert config["AI_BASE_URL"] == "http://aiproject-simulator:8001/v1"


AFFINITY = {
    "affinity": "cookie",
    "affinity-mode": "balanced",
    "session-cookie-name": "aiproject-pod",
    "session-cookie-path": "/",
}


@pytest.mark.parametrize("variant", ["production", "production+all"])
def test_ingress_nginx_keeps_a_browser_on_one_pod(variant):
    """The POST and its reply's stream reach the same pod (docs/capacity.md: a stream read on
    another pod costs several times the CPU): every Ingress of aiproject-web carries the same
    cookie affinity, or ingress-nginx would pick different endpoints for the two."""
    docs = render(variant)
    prefix = "nginx.ingress.kubernetes.io/"
    web = [
        ingress
        for ingress in of_kind(docs, "Ingress")
        if any(
            p["backend"]["service"]["name"] == "aiproject-web"
            for rule in ingress["spec"]["rules"]
            for p in rule["http"]["paths"]
        )
    ]
    assert {ingress_for(docs, path)["metadata"]["name"] for path in (STREAM, *POSTS)} <= {
        i["metadata"]["name"] for i in web
    }
    for ingress in web:
        annotations = ingress["metadata"]["annotations"]
        got = {k: annotations.get(prefix + k) for k in AFFINITY}
        assert got == AFFINITY, ingress["metadata"]["name"]
