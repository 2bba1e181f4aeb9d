"""Move episodes between robolearn and other tools' dataset formats.

Example:
    robolearn dataset export --data-dir data/sim_pick_cube --run 3 out/pick_cube_lerobot

Subcommands:
    export        episodes (by id, run or task) -> a LeRobotDataset v3.0 folder
    import        a LeRobotDataset v3.0 folder -> demonstrations in the store
    import-rlbench  RLBench demo folders (low_dim_obs.pkl + <camera>_rgb/) -> demonstrations
"""

from __future__ import annotations

import argparse
import json
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
    ex.set_defaults(func=main_export)

    im = dsub.add_parser("import", help="import a LeRobotDataset v3.0 folder as demos")
    _store_args(im)
    im.add_argument("path", type=Path, help="the dataset folder")
    im.add_argument("--name", help="name of the new run (default: import <folder>)")
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

    bar = tqdm(desc=desc, unit="episode")

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
            report = export_lerobot(store, ids, args.out, progress=progress)
    print(json.dumps(report.model_dump(exclude={"episode_ids"}) | {"episodes": len(ids)}))
    return 0


def main_import(args: argparse.Namespace) -> int:
    from robolearn.datasets import import_lerobot
    from robolearn.store import Store

    with Store.open(args.data_dir, args.database_url) as store:
        bar, progress = _bar("import")
        with bar:
            report = import_lerobot(store, args.path, run_name=args.name, progress=progress)
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
