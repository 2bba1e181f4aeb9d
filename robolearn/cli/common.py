"""Shared pieces of the CLI: config loading with overrides, logging, signal handling."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from robolearn.config import RunConfig, load_config


def add_config_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument("config", type=Path, nargs=None if required else "?",
                   help="run config YAML, e.g. configs/sim_pick_cube.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set actor.control_hz=30 (repeatable)")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    return load_config(args.config, args.overrides)


def setup_logging(level: str, component: str = "robolearn") -> None:
    """Configure logging for one process; `component` tags its lines (up, driver, actor)."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=f"%(asctime)s %(levelname)-7s [{component}] %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # PyOpenGL logs its EGL platform teardown at INFO on every exit.
    logging.getLogger("OpenGL").setLevel(logging.WARNING)


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, so loops end cleanly instead of dying mid-write."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        logging.getLogger("robolearn.cli").info("%s received: stopping",
                                                signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop
