"""Static checks of the deployment files: docker-compose.yml, deploy/Dockerfile and
deploy/postgres-init.sql. Nothing is built or started (no Docker needed)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from agenthq_common.settings import DEFAULT_PORTS, env_names

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
INIT_SQL = ROOT / "deploy" / "postgres-init.sql"

SERVICES = ["team", "workspace", "activity", "usage", "gateway", "realtime"]
INFRA = ["postgres", "redis", "rabbitmq"]
SETTINGS_CLASSES = {
    "team": "TeamSettings",
    "workspace": "WorkspaceSettings",
    "activity": "ActivitySettings",
    "usage": "UsageSettings",
    "gateway": "GatewaySettings",
    "realtime": "RealtimeSettings",
}


def settings_class(service: str) -> type[BaseSettings]:
    module = importlib.import_module(f"agenthq_{service}.settings")
    cls: type[BaseSettings] = getattr(module, SETTINGS_CLASSES[service])
    return cls


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = compose["services"]
    return result


def environment(spec: dict[str, Any]) -> dict[str, str | None]:
    """A service's ``environment`` in either compose form (mapping or KEY=VALUE list)."""
    env = spec.get("environment") or {}
    if isinstance(env, dict):
        return {str(k): None if v is None else str(v) for k, v in env.items()}
    result: dict[str, str | None] = {}
    for item in env:
        key, sep, value = str(item).partition("=")
        result[key] = value if sep else None
    return result


def depends_on(spec: dict[str, Any]) -> dict[str, str]:
    deps = spec.get("depends_on") or {}
    if isinstance(deps, list):  # short form: only "service_started"
        return dict.fromkeys(deps, "service_started")
    return {name: (cfg or {}).get("condition", "service_started") for name, cfg in deps.items()}


def healthcheck_command(spec: dict[str, Any]) -> str:
    test = spec["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(str(part) for part in test)


def test_every_service_and_the_infrastructure_is_defined(services: dict[str, Any]) -> None:
    assert set(SERVICES) == set(DEFAULT_PORTS)
    missing = [name for name in [*SERVICES, *INFRA] if name not in services]
    assert not missing


@pytest.mark.parametrize(
    ("name", "image_pattern"),
    [
        ("postgres", r"postgres:15([.\-].*)?"),
        ("redis", r"redis:7([.\-].*)?"),
        ("rabbitmq", r"rabbitmq:3.*management.*"),
    ],
)
def test_infrastructure_images_and_healthchecks(
    services: dict[str, Any], name: str, image_pattern: str
) -> None:
    spec = services[name]
    assert re.fullmatch(image_pattern, spec["image"]), spec["image"]
    assert spec.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_postgres_runs_the_init_script(services: dict[str, Any]) -> None:
    volumes = services["postgres"].get("volumes", [])
    mounts = [str(v) for v in volumes]
    assert any(
        m.startswith("./deploy/postgres-init.sql:/docker-entrypoint-initdb.d/") for m in mounts
    ), mounts


@pytest.mark.parametrize("service", SERVICES)
def test_service_is_built_from_the_shared_dockerfile(
    services: dict[str, Any], service: str
) -> None:
    build = services[service]["build"]
    assert isinstance(build, dict)
    assert (ROOT / build.get("context", ".")).resolve() == ROOT
    assert build["dockerfile"] == "deploy/Dockerfile"
    assert build["args"]["SERVICE"] == service
    if "PORT" in build["args"]:
        assert int(build["args"]["PORT"]) == DEFAULT_PORTS[service]


@pytest.mark.parametrize("service", SERVICES)
def test_service_publishes_its_default_port(services: dict[str, Any], service: str) -> None:
    port = DEFAULT_PORTS[service]
    published = [f"{port}:{port}"]
    if service == "realtime":  # and its WebSocket endpoint
        ws_port = settings_class("realtime").model_fields["ws_port"].default
        published.append(f"{ws_port}:{ws_port}")
        assert environment(services[service])["AGENTHQ_REALTIME_WS_PORT"] == str(ws_port)
    assert [str(p) for p in services[service]["ports"]] == published


@pytest.mark.parametrize("service", SERVICES)
def test_service_environment_uses_only_names_its_settings_read(
    services: dict[str, Any], service: str
) -> None:
    known = env_names(settings_class(service))
    env = environment(services[service])
    assert env, f"{service} has no environment"
    unknown = sorted(set(env) - known)
    assert not unknown, f"{service}: {unknown} are not read by {SETTINGS_CLASSES[service]}"
    # It must reach the infrastructure in the compose network, not its defaults.
    has_db = "AGENTHQ_POSTGRES_URL" in env or f"AGENTHQ_{service.upper()}_DATABASE_URL" in env
    assert has_db
    assert "AGENTHQ_BROKER_URL" in env
    assert "AGENTHQ_REDIS_URL" in env


@pytest.mark.parametrize("service", [s for s in SERVICES if s != "gateway"])
def test_services_fetch_keys_from_the_gateway(services: dict[str, Any], service: str) -> None:
    env = environment(services[service])
    assert env["AGENTHQ_JWKS_URL"] == "http://gateway:8000/.well-known/jwks.json"


def test_gateway_routes_to_the_services_by_name(services: dict[str, Any]) -> None:
    env = environment(services["gateway"])
    for service in SERVICES:
        if service == "gateway":
            continue
        url = f"http://{service}:{DEFAULT_PORTS[service]}"
        assert env[f"AGENTHQ_{service.upper()}_URL"] == url


@pytest.mark.parametrize("service", SERVICES)
def test_service_has_a_readiness_healthcheck(services: dict[str, Any], service: str) -> None:
    command = healthcheck_command(services[service])
    assert f"127.0.0.1:{DEFAULT_PORTS[service]}/readyz" in command
    assert "curl" not in command  # python:3.11-slim has no curl


@pytest.mark.parametrize("service", SERVICES)
def test_service_waits_for_healthy_infrastructure(services: dict[str, Any], service: str) -> None:
    deps = depends_on(services[service])
    for infra in INFRA:
        assert deps.get(infra) == "service_healthy", f"{service} -> {infra}: {deps.get(infra)}"


@pytest.mark.parametrize("service", SERVICES)
def test_service_is_migrated_before_it_starts(services: dict[str, Any], service: str) -> None:
    job = services[f"migrate-{service}"]
    assert job["build"]["args"]["SERVICE"] == service
    assert job["build"]["dockerfile"] == "deploy/Dockerfile"
    command = job["command"]
    command = command if isinstance(command, str) else " ".join(command)
    assert command == f"alembic -c services/{service}/alembic.ini upgrade head"
    assert (ROOT / "services" / service / "alembic.ini").is_file()
    unknown = sorted(set(environment(job)) - env_names(settings_class(service)))
    assert not unknown, f"migrate-{service}: {unknown}"
    assert depends_on(job).get("postgres") == "service_healthy"
    assert depends_on(services[service]).get(f"migrate-{service}") == (
        "service_completed_successfully"
    )


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined."""
    text = DOCKERFILE.read_text()
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current:
        lines.append(current)
    result = []
    for line in lines:
        instruction, _, args = line.partition(" ")
        result.append((instruction.upper(), args.strip()))
    return result


def test_dockerfile_builds_one_service_chosen_by_an_argument() -> None:
    instructions = dockerfile_instructions()
    froms = [args for ins, args in instructions if ins == "FROM"]
    assert len(froms) >= 2, "expected a multi-stage build"
    assert all(f.startswith("python:3.11-slim") for f in froms)
    args = [args.split("=")[0] for ins, args in instructions if ins == "ARG"]
    assert "SERVICE" in args
    text = DOCKERFILE.read_text()
    assert "uv sync --frozen --no-dev" in text
    assert '--package "agenthq-${SERVICE}"' in text
    cmd = next(args for ins, args in reversed(instructions) if ins == "CMD")
    assert "uvicorn" in cmd
    assert "agenthq_${SERVICE}.main:create_app" in cmd
    assert "--factory" in cmd
    assert "services/${SERVICE}/alembic.ini" in text


def test_dockerfile_runs_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions()
    users = [args for ins, args in instructions if ins == "USER"]
    assert users, "no USER instruction"
    final_user = users[-1].split(":")[0]
    assert final_user not in ("root", "0")


def test_dockerfile_has_a_healthcheck_on_healthz() -> None:
    instructions = dockerfile_instructions()
    checks = [args for ins, args in instructions if ins == "HEALTHCHECK"]
    assert checks, "no HEALTHCHECK instruction"
    assert "/healthz" in checks[-1]
    assert "curl" not in checks[-1]
    assert [args for ins, args in instructions if ins == "EXPOSE"]


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for name in (".venv", ".git", "node_modules", ".pytest_cache"):
        assert name in patterns or f"**/{name}" in patterns, name
    assert "**/__pycache__" in patterns or "__pycache__" in patterns


def test_postgres_init_creates_every_service_database() -> None:
    sql = INIT_SQL.read_text()
    sql = re.sub(r"--[^\n]*", "", sql)  # comments do not count
    created = set(re.findall(r"CREATE\s+DATABASE\s+\"?(\w+)\"?", sql, flags=re.IGNORECASE))
    assert created >= {f"agenthq_{service}" for service in SERVICES}
