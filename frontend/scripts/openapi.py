"""Write the operator service's OpenAPI document (from the app factory) to a JSON file.

Example (from frontend/):
    ../.venv/bin/python scripts/openapi.py openapi.json

The TypeScript types in src/api/schema.d.ts are generated from that file (`npm run gen`),
so the web UI never carries hand-written API types. The app is built against a throwaway
data directory: building it opens (and migrates) a store, and the document must not depend
on any real run's data.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from robolearn.config import load_config  # noqa: E402
from server.app import create_app  # noqa: E402

log = logging.getLogger(__name__)


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else Path("openapi.json")
    with tempfile.TemporaryDirectory(prefix="rl-openapi-") as tmp:
        cfg = load_config(ROOT / "configs" / "sim_reach.yaml",
                          [f"data_dir={tmp}", "server.development=true"])
        app = create_app(cfg, token_secret=b"openapi-dump-" + b"x" * 32)
        try:
            spec = app.openapi()
        finally:
            app.state.services.close()
    text = json.dumps(spec, indent=1, sort_keys=True) + "\n"
    # Rewrite only on change, so `npm run gen` and the build see a stable mtime.
    if not out.exists() or out.read_text() != text:
        out.write_text(text)
    print(f"{out}: {len(spec['paths'])} paths", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
