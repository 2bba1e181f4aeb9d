"""Dataset interchange: LeRobotDataset v3.0 export/import, RLBench demonstration import.

from robolearn.datasets import export_lerobot, import_lerobot, import_rlbench
with Store.open(data_dir) as store:
    export_lerobot(store, [1, 2, 3], Path("out/pick_cube_lerobot"))
    import_lerobot(store, Path("out/pick_cube_lerobot"))
    import_rlbench(store, Path("rlbench_data/reach_target"), cameras=("front", "wrist"))
"""

from robolearn.datasets.importing import ImportedEpisode, ImportReport
from robolearn.datasets.lerobot import ExportReport, export_lerobot, import_lerobot, read_lerobot
from robolearn.datasets.rlbench import RestrictedUnpickler, import_rlbench, restricted_load

__all__ = [
    "ExportReport",
    "ImportReport",
    "ImportedEpisode",
    "RestrictedUnpickler",
    "export_lerobot",
    "import_lerobot",
    "import_rlbench",
    "read_lerobot",
    "restricted_load",
]
