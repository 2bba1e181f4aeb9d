"""Dataset interchange: LeRobotDataset v3.0 export/import, RLBench demonstration import.

from robolearn.datasets import export_lerobot, import_lerobot, import_rlbench
with Store.open(data_dir) as store:
    export_lerobot(store, [1, 2, 3], Path("out/pick_cube_lerobot"))
    import_lerobot(store, Path("out/pick_cube_lerobot"), tasks={"*": "pick_cube"})
    import_rlbench(store, Path("rlbench_data/reach_target"), cameras=("front", "wrist"))
"""

from robolearn.datasets.importing import ImportedEpisode, ImportReport, RobotSpec
from robolearn.datasets.lerobot_export import ExportReport, export_lerobot
from robolearn.datasets.lerobot_import import (
    FeatureMap,
    LeRobotPlan,
    import_lerobot,
    iter_lerobot,
    plan_lerobot,
    read_lerobot,
)
from robolearn.datasets.rlbench import RestrictedUnpickler, import_rlbench, restricted_load

__all__ = [
    "ExportReport",
    "FeatureMap",
    "ImportReport",
    "ImportedEpisode",
    "LeRobotPlan",
    "RestrictedUnpickler",
    "RobotSpec",
    "export_lerobot",
    "import_lerobot",
    "import_rlbench",
    "iter_lerobot",
    "plan_lerobot",
    "read_lerobot",
    "restricted_load",
]
