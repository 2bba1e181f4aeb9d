"""Write the operator service's OpenAPI document (from the app factory) to a JSON file.

Example (from frontend/):
    ../.venv/bin/python scripts/openapi.py openapi.json

The TypeScript types in src/api/schema.d.ts are generated from that file (`npm run gen`),
so the web UI never carries hand-written API types; `make test` fails when the checked-in
file no longer matches the app (tests/server/test_openapi_drift.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from robolearn.server.openapi_doc import current_text  # noqa: E402


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else Path("openapi.json")
    text = current_text()
    # Rewrite only on change, so `npm run gen` and the build see a stable mtime.
    if not out.exists() or out.read_text() != text:
        out.write_text(text)
    print(f"{out}: {text.count(chr(10))} lines", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
