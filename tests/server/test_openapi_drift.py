"""The web UI's API types are generated from frontend/openapi.json: that file must be the
app's own document, and the TypeScript types must be generated from it, or the browser
calls routes and reads fields that are not what the service serves."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import BaseModel

from robolearn.server.openapi_doc import (
    CHECKED_IN,
    REGENERATE,
    ROOT,
    build_app,
    current_text,
    document_text,
    drift,
)


class Reply(BaseModel):
    ok: bool


def test_the_checked_in_document_is_the_apps() -> None:
    changes = drift(CHECKED_IN.read_text(), current_text())
    assert not changes, f"frontend/openapi.json is stale ({'; '.join(changes)}): {REGENERATE}"


def test_a_changed_route_is_caught(tmp_path: Path) -> None:
    app = build_app(tmp_path)
    try:
        before = document_text(app)
        @app.get("/api/not-in-the-ui")
        def extra() -> Reply:
            return Reply(ok=True)

        app.openapi_schema = None  # FastAPI caches the document
        after = document_text(app)
    finally:
        app.state.services.close()
    assert drift(before, after) == ["route /api/not-in-the-ui is new", "schema Reply is new"]
    assert drift(after, after) == []


@pytest.mark.skipif(shutil.which("npx") is None, reason="the web toolchain (node) is missing")
def test_the_typescript_types_are_generated_from_the_document(tmp_path: Path) -> None:
    frontend = ROOT / "frontend"
    if not (frontend / "node_modules" / ".bin" / "openapi-typescript").exists():
        pytest.skip("frontend/node_modules is not installed (make test installs it)")
    out = tmp_path / "schema.d.ts"
    subprocess.run(["npx", "--no-install", "openapi-typescript", str(CHECKED_IN), "-o", str(out)],
                   cwd=frontend, check=True, capture_output=True, timeout=120)
    assert out.read_text() == (frontend / "src" / "api" / "schema.d.ts").read_text(), (
        f"frontend/src/api/schema.d.ts is not generated from openapi.json: {REGENERATE}")
