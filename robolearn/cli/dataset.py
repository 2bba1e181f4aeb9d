"""Move episodes between robolearn and other tools' dataset formats.

Example:
    robolearn dataset export --data-dir data/sim_pick_cube --run 3 out/pick_cube_lerobot

Subcommands:
    export        episodes (by id, run or task) -> a LeRobotDataset v3.0 folder
    import        a LeRobotDataset v3.0 folder -> demonstrations in the store, e.g.
                  robolearn dataset import --config configs/sim_pick_cube.yaml \
                      --task pick_cube out/so100_pick
    import-rlbench  RLBench demo folders (low_dim_obs.pkl + <camera>_rgb/) -> demonstrations
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from robolearn.errors import DatasetError

if TYPE_CHECKING:
    from tqdm import tqdm


def _store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=Path("data/sim_pick_cube"),
                   help="run data directory (default: %(default)s)")
    p.add_argument("--database-url", help="database URL if not the SQLite file in data-dir")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from robolearn.actionspace import ActionScale

    p = sub.add_parser("dataset", help="export/import LeRobot and RLBench datasets",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    dsub = p.add_subparsers(dest="dataset_command", required=True)

    ex = dsub.add_parser("export", help="export episodes as a LeRobotDataset v3.0 folder")
    _store_args(ex)
    ex.add_argument("out", type=Path, help="new dataset folder")
    ex.add_argument("--episodes", type=_id_list, metavar="ID,ID,...",
                    help="comma-separated episode ids")
    ex.add_argument("--run", type=int, help="every complete episode of this run")
    ex.add_argument("--task", help="only this task (with --run, or alone)")
    ex.add_argument("--demos", action="store_true", help="only demonstrations")
    ex.add_argument("--lossless", action="store_true",
                    help="encode video losslessly (H.264 in RGB, larger files) instead of "
                         "ordinary yuv420p H.264")
    ex.set_defaults(func=main_export)

    im = dsub.add_parser(
        "import", help="import a LeRobotDataset v3.0 folder as demos",
        description="Validate a LeRobotDataset v3.0 folder (written by LeRobot or exported "
                    "by robolearn), then import its episodes one at a time as demonstrations. "
                    "State and action sizes must fit the robot's (the run config's with "
                    "--config, else 8-D proprio and 4-D actions); --map picks other features.")
    _store_args(im)
    im.add_argument("path", type=Path, help="the dataset folder")
    im.add_argument("--config", type=Path,
                    help="the run config whose robot, cameras and data dir the episodes are "
                         "for (sets --data-dir and --database-url)")
    im.add_argument("--name", help="name of the new run (default: import <folder>)")
    im.add_argument("--task", action="append", default=[], metavar="[TEXT=]TASK",
                    help="store task for the dataset's task texts: TASK for all, or "
                         "TEXT=TASK per text (repeat); the learner loads demos by task")
    im.add_argument("--map", action="append", default=[], metavar="FIELD=KEY[SELECT]",
                    help="dataset feature for a store field (repeat): proprio=, action=, "
                         "state=, joint_pos= (SELECT like 0:8 or 0,1,2) or "
                         "camera.<name>=observation.images.<key>")
    im.set_defaults(func=main_import)

    rl = dsub.add_parser("import-rlbench", help="import RLBench demonstrations")
    _store_args(rl)
    rl.add_argument("path", type=Path, help="task, variation or episode folder")
    rl.add_argument("--cameras", default="front,wrist",
                    help="comma-separated RLBench cameras (default: %(default)s)")
    rl.add_argument("--task", help="store task name (default: the task folder's name)")
    rl.add_argument("--xyz-m", type=float, default=ActionScale().xyz_m,
                    help="metres per full-scale action (default: %(default)s)")
    rl.set_defaults(func=main_import_rlbench)


def _id_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"episode ids must be integers: {text!r}") from exc


def _bar(desc: str) -> tuple[tqdm, Callable[[int, int], None]]:
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit="episode", disable=not sys.stderr.isatty())

    def progress(done: int, total: int) -> None:
        if bar.total != total or done < bar.n:
            bar.reset(total=total)
        bar.update(done - bar.n)

    return bar, progress


def main_export(args: argparse.Namespace) -> int:
    from robolearn.datasets import export_lerobot
    from robolearn.store import Store

    with Store.open(args.data_dir, args.database_url) as store:
        if args.episodes:
            ids = list(args.episodes)
        elif args.run is not None or args.task is not None:
            ids = [e.id for e in store.list_episodes(run_id=args.run, task=args.task,
                                                     is_demo=True if args.demos else None)]
        else:
            raise DatasetError("export: say which episodes: --episodes ID..., --run or --task")
        bar, progress = _bar("export")
        with bar:
            report = export_lerobot(store, ids, args.out, lossless=args.lossless,
                                    progress=progress)
    print(json.dumps(report.model_dump(exclude={"episode_ids"}) | {"episodes": len(ids)}))
    return 0


def _task_map(items: list[str]) -> dict[str, str]:
    tasks: dict[str, str] = {}
    for item in items:
        text, sep, task = item.rpartition("=")
        if not task.strip():
            raise DatasetError(f"--task {item!r}: expected TASK or TEXT=TASK")
        tasks[text if sep else "*"] = task.strip()
    return tasks


def main_import(args: argparse.Namespace) -> int:
    from robolearn.datasets import FeatureMap, RobotSpec, import_lerobot
    from robolearn.store import Store

    data_dir, database_url, spec = args.data_dir, args.database_url, RobotSpec.default()
    if args.config is not None:
        from robolearn.config import load_config

        config = load_config(args.config)
        data_dir, database_url = config.data_dir, config.database_url
        spec = RobotSpec.from_config(config)
    with Store.open(data_dir, database_url) as store:
        bar, progress = _bar("import")
        with bar:
            report = import_lerobot(store, args.path, run_name=args.name, spec=spec,
                                    feature_map=FeatureMap.parse(args.map),
                                    tasks=_task_map(args.task), progress=progress)
    print(json.dumps(report.model_dump()))
    return 0


def main_import_rlbench(args: argparse.Namespace) -> int:
    from robolearn.actionspace import ActionScale
    from robolearn.datasets import import_rlbench
    from robolearn.store import Store

    cameras = tuple(c.strip() for c in args.cameras.split(",") if c.strip())
    with Store.open(args.data_dir, args.database_url) as store:
        bar, progress = _bar("import rlbench")
        with bar:
            report = import_rlbench(store, args.path, cameras=cameras, task=args.task,
                                    scale=ActionScale(xyz_m=args.xyz_m), progress=progress)
    print(json.dumps(report.model_dump()))
    return 0
