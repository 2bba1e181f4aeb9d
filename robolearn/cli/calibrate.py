"""Calibration: printable boards, camera intrinsics from images, and a sim self-check.

Example:
    robolearn calibrate board --out board/            # board.png + board.pdf, print at 100%
    robolearn calibrate intrinsics configs/rig_ur5e.yaml --camera wrist_cam --images shots/
    robolearn calibrate sim-check configs/sim_reach.yaml   # recover the sim wrist camera
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pydantic import ValidationError

from robolearn.cli.common import add_config_args, config_from_args
from robolearn.config.hardware import CharucoBoardConfig
from robolearn.errors import CalibrationError, ConfigError

log = logging.getLogger(__name__)


def _board_args(p: argparse.ArgumentParser) -> None:
    d = CharucoBoardConfig()
    p.add_argument("--squares", type=int, nargs=2, default=(d.squares_x, d.squares_y),
                   metavar=("X", "Y"), help="board squares along x and y")
    p.add_argument("--square-mm", type=float, default=d.square_length_m * 1000,
                   help="printed square side, mm (measure the print)")
    p.add_argument("--marker-mm", type=float, default=d.marker_length_m * 1000,
                   help="printed marker side, mm")
    p.add_argument("--dictionary", default=d.dictionary, help="ArUco dictionary name")


def _board(args: argparse.Namespace) -> CharucoBoardConfig:
    try:
        return CharucoBoardConfig(squares_x=args.squares[0], squares_y=args.squares[1],
                                  square_length_m=args.square_mm / 1000,
                                  marker_length_m=args.marker_mm / 1000,
                                  dictionary=args.dictionary)
    except ValidationError as e:
        raise ConfigError(f"calibration board: {e}") from e


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="camera and hand-eye calibration tools",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cmds = p.add_subparsers(dest="calibration", required=True, metavar="WHAT")
    b = cmds.add_parser("board", help="write a printable ChArUco board (PNG + PDF)")
    _board_args(b)
    b.add_argument("--out", type=Path, required=True, help="output folder")
    b.add_argument("--dpi", type=int, default=300, help="print resolution")
    b.set_defaults(func=main_board)
    i = cmds.add_parser("intrinsics", help="intrinsics from a folder of board images")
    add_config_args(i)
    _board_args(i)
    i.add_argument("--camera", required=True, help="camera id the result is stored for")
    i.add_argument("--images", type=Path, required=True, help="folder of PNG/JPEG views")
    i.set_defaults(func=main_intrinsics)
    s = cmds.add_parser("sim-check", help="calibrate the sim wrist camera and compare to truth")
    add_config_args(s)
    s.add_argument("--views", type=int, default=14, help="views to collect")
    s.set_defaults(func=main_sim_check)


def main_board(args: argparse.Namespace) -> int:
    from calibration.board import write_printable

    png, pdf = write_printable(_board(args), args.out, dpi=args.dpi)
    print(f"wrote {png} and {pdf}; print at 100% scale and measure one square")
    return 0


def main_intrinsics(args: argparse.Namespace) -> int:
    import cv2
    from tqdm import tqdm

    from calibration.detect import BoardDetector
    from calibration.intrinsics import calibrate_intrinsics
    from calibration.results import save_calibration
    from robolearn.store import Store

    cfg = config_from_args(args)
    files = sorted(p for p in args.images.iterdir()
                   if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not files:
        raise CalibrationError(f"intrinsics: no PNG or JPEG images in {args.images}")
    detector = BoardDetector(_board(args))
    detections = []
    for path in tqdm(files, desc="detect", unit="image"):
        bgr = cv2.imread(str(path))
        if bgr is None:
            raise CalibrationError(f"intrinsics: cannot read image {path}")
        detections.append(detector.detect(bgr[:, :, ::-1].copy()))
    result = calibrate_intrinsics(detections)
    with Store.open(cfg.data_dir, cfg.database_url) as store:
        stored = save_calibration(store, "intrinsics", args.camera, result)
    for idx, why in sorted(result.rejected.items()):
        print(f"  rejected {files[idx].name}: {why}")
    k = result.k
    print(f"{args.camera}: fx {k[0, 0]:.1f} fy {k[1, 1]:.1f} cx {k[0, 2]:.1f} cy {k[1, 2]:.1f} px, "
          f"RMS {result.rms_px:.3f} px, coverage {result.coverage:.0%}; stored version "
          f"{stored.version} at {stored.path}")
    return 0


def main_sim_check(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from calibration.detect import BoardDetector
    from calibration.handeye import board_pose, calibrate_hand_eye
    from calibration.intrinsics import calibrate_intrinsics
    from calibration.sim import BoardScene
    from robolearn.sim.model import HOME_Q_RAD

    config_from_args(args)  # validates the config; the check itself needs only the sim
    board = CharucoBoardConfig()
    scene = BoardScene(board, board_pos_m=(0.55, 0.05, 0.001))
    detector = BoardDetector(board)
    rng = np.random.default_rng(0)
    spread = np.array([0.6, 0.6, 0.5, 0.6, 1.0, 1.0, 1.0]) * 0.3
    dets, poses = [], []
    with tqdm(total=args.views, desc="views", unit="view") as bar:
        for _ in range(args.views * 4):
            scene.set_arm(HOME_Q_RAD + rng.uniform(-1, 1, 7) * spread)
            d = detector.detect(scene.render("wrist"))
            if d is not None and d.count >= 12:
                dets.append(d)
                poses.append(scene.tcp_pose())
                bar.update()
            if len(dets) == args.views:
                break
    truth = np.linalg.inv(scene.tcp_pose()) @ scene.camera_pose("wrist")
    true_k = scene.intrinsics("wrist")
    scene.close()
    intr = calibrate_intrinsics(dets)
    he = calibrate_hand_eye(poses, [board_pose(d, intr.k, intr.dist) for d in dets])
    f_err = abs(intr.k[0, 0] / true_k[0, 0] - 1) * 100
    t_err = float(np.linalg.norm(he.matrix[:3, 3] - truth[:3, 3])) * 1000
    print(f"focal {intr.k[0, 0]:.2f} px (true {true_k[0, 0]:.2f}, {f_err:.2f}% off); "
          f"hand-eye {he.method}: {t_err:.2f} mm from truth, residual {he.residual_mm:.2f} mm "
          f"/ {he.residual_deg:.3f} deg")
    return 0
