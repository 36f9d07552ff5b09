"""Generated docs are current; the developer commands say what is wrong."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from agenthq_common.events import registry
from agenthq_devctl.docs import asyncapi_json, configuration_markdown, readme_with_configuration

ROOT = Path(__file__).resolve().parents[2]


def test_asyncapi_document_is_current_and_lists_every_event_type() -> None:
    committed = (ROOT / "docs" / "asyncapi.json").read_text()
    assert committed == asyncapi_json(), "docs/asyncapi.json is stale: run `make docs`"
    doc = json.loads(committed)
    addresses = {channel["address"] for channel in doc["channels"].values()}
    assert addresses == {info.type for info in registry.types()}


def test_configuration_doc_is_current() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == configuration_markdown(), "docs/configuration.md is stale: run `make docs`"


def test_readme_configuration_table_is_current() -> None:
    readme = (ROOT / "README.md").read_text()
    assert readme == readme_with_configuration(readme), "README's table is stale: run `make docs`"


def test_check_names_the_unreachable_dependency_and_how_to_start_it() -> None:
    env = {**os.environ, "AGENTHQ_REDIS_URL": "redis://127.0.0.1:1/0"}
    result = subprocess.run(
        [sys.executable, "-m", "agenthq_devctl", "check"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Redis is not reachable" in result.stdout
    assert "redis-server" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert "[ok  ] PostgreSQL" in result.stdout


def test_the_console_build_says_how_to_get_node_when_it_is_missing() -> None:
    """Without Node on the PATH, `make web` (and so `make run`) says what to
    install instead of failing obscurely."""
    make = shutil.which("make")
    assert make is not None
    result = subprocess.run(
        [make, "-s", "web"],
        cwd=ROOT,
        env={"PATH": "/nonexistent", "HOME": os.environ.get("HOME", "/root")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "Node.js 20.19 or later" in result.stderr
    assert "https://nodejs.org" in result.stderr
