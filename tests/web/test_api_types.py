"""The console's API types cannot drift from the API: the committed document
is the one the code produces, and the committed types are generated from it.
`make web-types` regenerates both."""

from __future__ import annotations

import subprocess
from pathlib import Path

from agenthq_devctl.openapi import public_document, render

WEB = Path(__file__).resolve().parents[2] / "web"
GENERATOR = WEB / "node_modules" / ".bin" / "openapi-typescript"
STALE = "stale: run `make web-types` and commit web/openapi.json and web/src/api/schema.d.ts"


def test_the_committed_openapi_document_is_the_codes() -> None:
    assert (WEB / "openapi.json").read_text() == render(public_document()), STALE


def test_the_committed_api_types_are_generated_from_that_document(tmp_path: Path) -> None:
    assert GENERATOR.exists(), "the console's packages are missing: run `make web-deps`"
    out = tmp_path / "schema.d.ts"
    subprocess.run(
        [str(GENERATOR), str(WEB / "openapi.json"), "-o", str(out)],
        cwd=WEB,
        check=True,
        capture_output=True,
    )
    assert (WEB / "src" / "api" / "schema.d.ts").read_text() == out.read_text(), STALE
