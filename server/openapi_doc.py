"""The operator service's OpenAPI document as the web UI's types are generated from it
(frontend/openapi.json -> frontend/src/api/schema.d.ts), and the check that the checked-in
copy still matches the app."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from fastapi import FastAPI

ROOT = Path(__file__).resolve().parent.parent
CHECKED_IN = ROOT / "frontend" / "openapi.json"
REGENERATE = "cd frontend && npm run gen"


def build_app(data_dir: Path) -> FastAPI:
    """The service as the document describes it, on a throwaway data directory (building
    it opens and migrates a store; the document must not depend on any run's data)."""
    from robolearn.config import load_config
    from robolearn.server.app import create_app

    cfg = load_config(ROOT / "configs" / "sim_reach.yaml",
                      [f"data_dir={data_dir}", "server.development=true"])
    return create_app(cfg, token_secret=b"openapi-dump-" + b"x" * 32)


def document_text(app: FastAPI) -> str:
    return json.dumps(app.openapi(), indent=1, sort_keys=True) + "\n"


def current_text() -> str:
    with tempfile.TemporaryDirectory(prefix="rl-openapi-") as tmp:
        app = build_app(Path(tmp))
        try:
            return document_text(app)
        finally:
            app.state.services.close()


def drift(expected: str, actual: str) -> list[str]:
    """What differs between two documents, in words ([] when they are the same)."""
    if expected == actual:
        return []
    old: dict[str, Any] = json.loads(expected)
    new: dict[str, Any] = json.loads(actual)
    out = []
    for kind, key in (("route", "paths"), ("schema", "components")):
        before = old.get(key, {}) if key == "paths" else old.get(key, {}).get("schemas", {})
        after = new.get(key, {}) if key == "paths" else new.get(key, {}).get("schemas", {})
        out += [f"{kind} {name} is new" for name in sorted(set(after) - set(before))]
        out += [f"{kind} {name} is gone" for name in sorted(set(before) - set(after))]
        out += [f"{kind} {name} changed" for name in sorted(set(before) & set(after))
                if before[name] != after[name]]
    return out or ["the document changed outside its routes and schemas"]
