"""The Kubernetes base (``deploy/k8s/base``), generated from the code.

Ports, variable names and shutdown times come from the settings classes and
the services, so the manifests cannot drift from what the processes read:
``agenthq-dev k8s`` writes them, and a test fails when they are stale. The
overlays (``deploy/k8s/overlays/{dev,prod}``) are written by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from agenthq_devctl.services import SERVICES, default_port, default_ws_port

PART_OF = "agenthq"
IMAGE = "agenthq/{service}"  # the overlays pin the registry and the tag
UID = 10001  # deploy/Dockerfile's user
# Each service stops within uvicorn's graceful timeout (10 s) plus its own
# shutdown steps (Service.stop: 10 s for tasks, 5 s per closer); the realtime
# service also closes its sockets (1001) and waits for their handlers.
GRACE_SECONDS = {"realtime": 45}
DEFAULT_GRACE = 30
# Requests are what one replica needs at rest; limits leave room for bursts.
RESOURCES = {
    "gateway": ("250m", "256Mi", "1", "512Mi"),
    "realtime": ("250m", "512Mi", "1", "1Gi"),  # ~17 KiB a socket: 10,000 in 170 MiB
    "activity": ("200m", "256Mi", "1", "512Mi"),
}
DEFAULT_RESOURCES = ("100m", "192Mi", "500m", "384Mi")
AUTOSCALED = ("gateway", "realtime")


def labels(service: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": service, "app.kubernetes.io/part-of": PART_OF}


def env(service: str) -> list[dict[str, Any]]:
    """What differs per cluster comes from the config map and Secrets."""
    items: list[dict[str, Any]] = [
        {
            "name": f"AGENTHQ_{service.upper()}_DATABASE_URL",
            "valueFrom": {"secretKeyRef": {"name": f"agenthq-{service}-db-app", "key": "uri"}},
        },
        {
            "name": "AGENTHQ_BROKER_URL",
            "valueFrom": {"secretKeyRef": {"name": "agenthq-broker", "key": "url"}},
        },
        {
            "name": "AGENTHQ_REDIS_URL",
            "valueFrom": {"secretKeyRef": {"name": "agenthq-redis", "key": "url"}},
        },
    ]
    if service == "usage":
        items.append(
            {
                "name": "AGENTHQ_USAGE_INGEST_CREDENTIALS",
                "valueFrom": {
                    "secretKeyRef": {"name": "agenthq-service-credentials", "key": "usage-ingest"}
                },
            }
        )
    return items


def ports(service: str) -> list[dict[str, Any]]:
    found = [{"name": "http", "containerPort": default_port(service), "protocol": "TCP"}]
    if service == "realtime":
        found.append({"name": "ws", "containerPort": default_ws_port(), "protocol": "TCP"})
    return found


def probe(path: str, **timing: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, "timeoutSeconds": 4, **timing}


def deployment(service: str) -> dict[str, Any]:
    cpu_req, mem_req, cpu_lim, mem_lim = RESOURCES.get(service, DEFAULT_RESOURCES)
    image = IMAGE.format(service=service)
    secure = {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    container = {
        "name": service,
        "image": image,
        "ports": ports(service),
        "envFrom": [{"configMapRef": {"name": "agenthq-config"}}],
        "env": env(service),
        "startupProbe": probe("/healthz", periodSeconds=2, failureThreshold=60),
        "readinessProbe": probe("/readyz", periodSeconds=5, failureThreshold=2),
        "livenessProbe": probe("/healthz", periodSeconds=10, failureThreshold=3),
        "resources": {
            "requests": {"cpu": cpu_req, "memory": mem_req},
            "limits": {"cpu": cpu_lim, "memory": mem_lim},
        },
        "securityContext": secure,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    migrate = {
        "name": "migrate",
        "image": image,
        # Replicas starting together take turns (an advisory lock).
        "command": ["alembic", "-c", f"services/{service}/alembic.ini", "upgrade", "head"],
        "envFrom": [{"configMapRef": {"name": "agenthq-config"}}],
        "env": env(service)[:1],
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": secure,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": service, "labels": labels(service)},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels(service)},
            "strategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels(service)},
                "spec": {
                    "terminationGracePeriodSeconds": GRACE_SECONDS.get(service, DEFAULT_GRACE),
                    "securityContext": {"runAsNonRoot": True, "fsGroup": UID},
                    "automountServiceAccountToken": False,
                    "initContainers": [migrate],
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def service_object(service: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": service, "labels": labels(service)},
        "spec": {
            "selector": labels(service),
            "ports": [
                {"name": p["name"], "port": p["containerPort"], "targetPort": p["name"]}
                for p in ports(service)
            ],
        },
    }


def disruption_budget(service: str) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": service, "labels": labels(service)},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": labels(service)}},
    }


def autoscaler(service: str) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": service, "labels": labels(service)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": service},
            "minReplicas": 2,
            "maxReplicas": 20,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70},
                    },
                }
            ],
        },
    }


def network_policies() -> list[dict[str, Any]]:
    """Nothing reaches a pod unless allowed: the gateway and the realtime
    sockets from anywhere (the ingress), each service's HTTP only from the
    gateway."""
    policies: list[dict[str, Any]] = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "agenthq-default-deny-ingress"},
            "spec": {
                "podSelector": {"matchLabels": {"app.kubernetes.io/part-of": PART_OF}},
                "policyTypes": ["Ingress"],
            },
        }
    ]
    public = {"gateway": [default_port("gateway")], "realtime": [default_ws_port()]}
    for service, open_ports in public.items():
        policies.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": f"{service}-from-anywhere"},
                "spec": {
                    "podSelector": {"matchLabels": labels(service)},
                    "policyTypes": ["Ingress"],
                    "ingress": [{"ports": [{"port": p, "protocol": "TCP"} for p in open_ports]}],
                },
            }
        )
    for service in SERVICES:
        if service == "gateway":
            continue
        policies.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": f"{service}-http-from-gateway"},
                "spec": {
                    "podSelector": {"matchLabels": labels(service)},
                    "policyTypes": ["Ingress"],
                    "ingress": [
                        {
                            "from": [{"podSelector": {"matchLabels": labels("gateway")}}],
                            "ports": [{"port": default_port(service), "protocol": "TCP"}],
                        }
                    ],
                },
            }
        )
    return policies


def config_map() -> dict[str, Any]:
    data = {
        "AGENTHQ_LOG_JSON": "true",
        "AGENTHQ_JWKS_URL": f"http://gateway:{default_port('gateway')}/.well-known/jwks.json",
        "AGENTHQ_REALTIME_WS_HOST": "0.0.0.0",
        "AGENTHQ_REALTIME_WS_PORT": str(default_ws_port()),
    }
    for service in SERVICES:
        if service != "gateway":
            data[f"AGENTHQ_{service.upper()}_URL"] = f"http://{service}:{default_port(service)}"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "agenthq-config"},
        "data": data,
    }


def ingress() -> dict[str, Any]:
    def path(prefix: str, service: str, port: str) -> dict[str, Any]:
        return {
            "path": prefix,
            "pathType": "Prefix",
            "backend": {"service": {"name": service, "port": {"name": port}}},
        }

    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "agenthq",
            "annotations": {
                # WebSockets are long-lived: do not cut an idle socket after 60 s.
                "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
                "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
            },
        },
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {
                    "host": "agenthq.example.com",
                    "http": {
                        "paths": [path("/ws", "realtime", "ws"), path("/", "gateway", "http")]
                    },
                }
            ],
        },
    }


def documents() -> dict[str, list[dict[str, Any]]]:
    """File name -> the objects it holds."""
    files: dict[str, list[dict[str, Any]]] = {
        "config.yaml": [config_map()],
        "network-policies.yaml": network_policies(),
        "ingress.yaml": [ingress()],
    }
    for service in SERVICES:
        objects = [deployment(service), service_object(service), disruption_budget(service)]
        if service in AUTOSCALED:
            objects.append(autoscaler(service))
        files[f"{service}.yaml"] = objects
    files["kustomization.yaml"] = [
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": sorted(name for name in files if name != "kustomization.yaml"),
        }
    ]
    return files


HEADER = "# Generated by `agenthq-dev k8s` from the code; do not edit (see tools/devctl/k8s.py).\n"


def render() -> dict[str, str]:
    return {
        name: HEADER + yaml.safe_dump_all(objects, sort_keys=False, width=100)
        for name, objects in documents().items()
    }


def write_base(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render().items():
        (out / name).write_text(text)
        written.append(out / name)
    return written
