"""Append one benchmark result as a JSON line to benchmarks/results.jsonl."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

RESULTS_FILE = Path(__file__).with_name("results.jsonl")


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True, cwd=Path(__file__).parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def append_result(benchmark: str, metrics: dict[str, Any], **context: Any) -> dict[str, Any]:
    """Write {benchmark, time, commit, machine, metrics, context} to the results file.

    Returns the record, so the caller can print it.
    """
    record = {
        "benchmark": benchmark,
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        "metrics": metrics,
        "context": context,
    }
    with RESULTS_FILE.open("a") as f:
        f.write(json.dumps(record) + "\n")
    return record
