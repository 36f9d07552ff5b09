"""The Kubernetes manifests: the base is what the code generates; every
overlay renders (kubectl kustomize) into objects valid against the
Kubernetes API's schemas; the operators' resources use their documented
fields; and what the manifests promise (probes, limits, non-root, budgets,
autoscaling, who may reach whom) holds."""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from agenthq_common.settings import env_names
from agenthq_devctl.k8s import AUTOSCALED, render
from agenthq_devctl.services import SERVICES, default_port, default_ws_port, settings_class

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES = "1.31.0"
OVERLAYS = ("dev", "prod")
# Fields of the operators' resources as their references document them
# (CloudNativePG "API Reference": Cluster/ClusterSpec/BootstrapInitDB/StorageConfiguration;
# RabbitMQ Cluster Operator "API Reference": RabbitmqClusterSpec).
DOCUMENTED = {
    ("postgresql.cnpg.io/v1", "Cluster"): {
        "spec": {
            "instances",
            "imageName",
            "primaryUpdateStrategy",
            "storage",
            "bootstrap",
            "monitoring",
        },
        "spec.storage": {"size", "storageClass", "resizeInUseVolumes", "pvcTemplate"},
        "spec.bootstrap": {"initdb", "recovery", "pg_basebackup"},
        "spec.bootstrap.initdb": {"database", "owner", "secret", "encoding", "localeCollate"},
        "spec.monitoring": {"enablePodMonitor", "customQueriesConfigMap"},
    },
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): {
        "spec": {"replicas", "image", "resources", "persistence", "rabbitmq", "service", "tls"},
        "spec.persistence": {"storage", "storageClassName"},
        "spec.rabbitmq": {"additionalConfig", "additionalPlugins", "envConfig", "advancedConfig"},
    },
}


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:  # Debian's package, like the browser tests' Chromium
        subprocess.run(["apt-get", "install", "-y", "-q", "kubectl"], check=True)
        found = shutil.which("kubectl")
    assert found is not None
    return found


@cache
def rendered(target: str) -> list[dict[str, Any]]:
    path = K8S / "base" if target == "base" else K8S / "overlays" / target
    result = subprocess.run(
        [kubectl(), "kustomize", str(path)], check=True, capture_output=True, text=True
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_the_base_is_what_the_code_generates() -> None:
    on_disk = {p.name: p.read_text() for p in (K8S / "base").glob("*.yaml")}
    assert on_disk == render(), "stale: run `agenthq-dev k8s` and commit deploy/k8s/base"


@pytest.mark.parametrize("target", ["base", *OVERLAYS])
def test_every_object_is_valid_for_the_kubernetes_api(target: str) -> None:
    objects = rendered(target)
    assert objects
    for obj in objects:
        if any(obj["apiVersion"] == api for api, _ in DOCUMENTED):
            continue  # custom resources: their own test
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def _fields(spec: dict[str, Any], prefix: str = "spec") -> dict[str, set[str]]:
    found = {prefix: set(spec)}
    for key, value in spec.items():
        if isinstance(value, dict) and key not in ("resources", "requests", "limits"):
            found.update(_fields(value, f"{prefix}.{key}"))
    return found


def test_the_operators_resources_use_documented_fields() -> None:
    objects = rendered("prod")
    seen = set()
    for obj in objects:
        documented = DOCUMENTED.get((obj["apiVersion"], obj["kind"]))
        if documented is None:
            continue
        seen.add(obj["kind"])
        for path, keys in _fields(obj["spec"]).items():
            if path in documented:
                assert keys <= documented[path], f"{obj['kind']} {path}: {keys - documented[path]}"
    assert seen == {"Cluster", "RabbitmqCluster"}
    clusters = of_kind(objects, "Cluster")
    assert set(clusters) == {f"agenthq-{s}-db" for s in SERVICES}  # one database per service
    for service in SERVICES:
        initdb = clusters[f"agenthq-{service}-db"]["spec"]["bootstrap"]["initdb"]
        assert initdb["database"] == f"agenthq_{service}"


@pytest.mark.parametrize("target", OVERLAYS)
def test_each_deployment_has_probes_limits_a_budget_and_runs_as_nobody(target: str) -> None:
    objects = rendered(target)
    deployments = of_kind(objects, "Deployment")
    budgets = of_kind(objects, "PodDisruptionBudget")
    autoscalers = of_kind(objects, "HorizontalPodAutoscaler")
    for service in SERVICES:
        pod = deployments[service]["spec"]["template"]["spec"]
        app = pod["containers"][0]
        assert app["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert app["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert app["startupProbe"]["httpGet"]["path"] == "/healthz"
        assert {"cpu", "memory"} <= set(app["resources"]["requests"])
        assert "memory" in app["resources"]["limits"]
        assert (
            app["securityContext"]["runAsNonRoot"]
            and app["securityContext"]["readOnlyRootFilesystem"]
        )
        # Graceful shutdown fits: uvicorn's 10 s plus the service's own steps.
        assert pod["terminationGracePeriodSeconds"] >= 30
        assert pod["initContainers"][0]["command"][-2:] == ["upgrade", "head"]
        assert service in budgets
    assert set(autoscalers) == set(AUTOSCALED)


@pytest.mark.parametrize("target", OVERLAYS)
def test_the_containers_get_only_variables_the_settings_read(target: str) -> None:
    objects = rendered(target)
    deployments = of_kind(objects, "Deployment")
    read_by: dict[str, set[str]] = {s: env_names(settings_class(s)) for s in SERVICES}
    helpers = {"AGENTHQ_RABBITMQ_USER", "AGENTHQ_RABBITMQ_PASSWORD"}  # $(...) in the broker URL
    for service in SERVICES:
        app = deployments[service]["spec"]["template"]["spec"]["containers"][0]
        unknown = sorted({e["name"] for e in app["env"]} - read_by[service] - helpers)
        assert not unknown, f"{service} does not read {unknown}"
        assert {p["name"]: p["containerPort"] for p in app["ports"]}["http"] == default_port(
            service
        )
    # The shared config map: every name is read by some service.
    shared = of_kind(objects, "ConfigMap")["agenthq-config"]["data"]
    assert not sorted(set(shared) - set().union(*read_by.values()))
    realtime = deployments["realtime"]["spec"]["template"]["spec"]["containers"][0]
    assert {p["name"]: p["containerPort"] for p in realtime["ports"]}["ws"] == default_ws_port()
    assert shared["AGENTHQ_REALTIME_WS_PORT"] == str(default_ws_port())


def test_only_the_gateway_and_the_sockets_are_reachable_and_each_database_by_its_owner() -> None:
    objects = rendered("prod")
    policies = of_kind(objects, "NetworkPolicy")
    assert "agenthq-default-deny-ingress" in policies
    open_to_all = {
        p["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/name")
        for p in policies.values()
        if any("from" not in rule for rule in p["spec"].get("ingress", []))
    }
    assert open_to_all == {"gateway", "realtime"}
    socket_rule = policies["realtime-from-anywhere"]["spec"]["ingress"][0]
    assert [p["port"] for p in socket_rule["ports"]] == [default_ws_port()]
    for service in SERVICES:
        rules = policies[f"agenthq-{service}-db-from-its-owner"]["spec"]["ingress"]
        owners = [
            r["from"][0]["podSelector"]["matchLabels"]
            for r in rules
            if any(p.get("port") == 5432 for p in r.get("ports", []))
        ]
        assert owners == [
            {"app.kubernetes.io/name": service, "app.kubernetes.io/part-of": "agenthq"}
        ]
    ingress = next(iter(of_kind(objects, "Ingress").values()))
    paths = {
        p["path"]: p["backend"]["service"] for p in ingress["spec"]["rules"][0]["http"]["paths"]
    }
    assert paths["/ws"] == {"name": "realtime", "port": {"name": "ws"}}
    assert paths["/"] == {"name": "gateway", "port": {"name": "http"}}


def test_prod_runs_quorum_queues_and_dev_the_classic_default() -> None:
    def config(target: str) -> dict[str, str]:
        return dict(of_kind(rendered(target), "ConfigMap")["agenthq-config"]["data"])

    assert config("prod")["AGENTHQ_QUEUE_TYPE"] == "quorum"
    assert "AGENTHQ_QUEUE_TYPE" not in config("dev")
    # Behind the TLS ingress: a Secure session cookie, sockets over wss://.
    assert config("prod")["AGENTHQ_CONSOLE_COOKIE_SECURE"] == "true"
    assert config("prod")["AGENTHQ_REALTIME_PUBLIC_URL"].startswith("wss://")
