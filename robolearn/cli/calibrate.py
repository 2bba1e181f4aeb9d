"""Calibration: printable boards, camera intrinsics from images, and a sim self-check.

Example:
    robolearn calibrate board --out board/            # board.png + board.pdf, print at 100%
    robolearn calibrate intrinsics configs/rig_ur5e.yaml --camera wrist_cam --images shots/
    robolearn calibrate sim-check configs/sim_reach.yaml   # recover the sim wrist camera
    robolearn calibrate workspace configs/rig_franka.yaml --points 4   # with the driver running
    robolearn calibrate handeye configs/rig_franka.yaml --camera wrist_cam --views 12

`workspace` and `handeye` read the arm's pose (and the camera's frames) live from the running
drivers (`robolearn driver CONFIG`, plus `--camera NAME` for a real camera): move the arm by
hand or pendant to each pose, hold it still and press Enter. Results are stored as new
versions; the newest workspace box narrows the safety box whenever a run starts.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from robolearn.cli.common import add_config_args, config_from_args
from robolearn.errors import CalibrationError, ConfigError

if TYPE_CHECKING:
    from robolearn.config.hardware import CharucoBoardConfig

log = logging.getLogger(__name__)


def _board_args(p: argparse.ArgumentParser) -> None:
    from robolearn.config.hardware import CharucoBoardConfig

    d = CharucoBoardConfig()
    p.add_argument("--squares", type=int, nargs=2, default=(d.squares_x, d.squares_y),
                   metavar=("X", "Y"), help="board squares along x and y")
    p.add_argument("--square-mm", type=float, default=d.square_length_m * 1000,
                   help="printed square side, mm (measure the print)")
    p.add_argument("--marker-mm", type=float, default=d.marker_length_m * 1000,
                   help="printed marker side, mm")
    p.add_argument("--dictionary", default=d.dictionary, help="ArUco dictionary name")


def _board(args: argparse.Namespace) -> CharucoBoardConfig:
    from pydantic import ValidationError

    from robolearn.config.hardware import CharucoBoardConfig

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
    w = cmds.add_parser("workspace", help="teach the TCP box by moving the arm to its corners")
    add_config_args(w)
    w.add_argument("--points", type=int, default=4,
                   help="poses to teach (>= 2; opposite corners of the safe box)")
    w.add_argument("--margin-mm", type=float, default=10.0,
                   help="shrink the box this far inside the taught poses, mm")
    w.set_defaults(func=main_workspace)
    h = cmds.add_parser("handeye", help="hand-eye transform from live arm poses and frames")
    add_config_args(h)
    _board_args(h)
    h.add_argument("--camera", required=True, help="camera of the config to calibrate")
    h.add_argument("--views", type=int, default=12, help="views to collect (>= 3)")
    h.add_argument("--mode", choices=["eye_in_hand", "eye_to_hand"], default="eye_in_hand",
                   help="eye_in_hand: camera on the gripper, board fixed; eye_to_hand: "
                   "camera fixed, board held by the gripper")
    h.add_argument("--fit-intrinsics", action="store_true",
                   help="also fit (and store) the intrinsics from these views instead of "
                   "using the camera's newest stored intrinsics")
    h.set_defaults(func=main_handeye)


def main_board(args: argparse.Namespace) -> int:
    from robolearn.calibration.board import write_printable

    png, pdf = write_printable(_board(args), args.out, dpi=args.dpi)
    print(f"wrote {png} and {pdf}; print at 100% scale and measure one square")
    return 0


def main_intrinsics(args: argparse.Namespace) -> int:
    import cv2
    from tqdm import tqdm

    from robolearn.calibration.detect import BoardDetector
    from robolearn.calibration.intrinsics import calibrate_intrinsics
    from robolearn.calibration.results import save_intrinsics
    from robolearn.store import Store

    cfg = config_from_args(args)
    files = sorted(p for p in args.images.iterdir()
                   if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not files:
        raise CalibrationError(f"intrinsics: no PNG or JPEG images in {args.images}")
    board = _board(args)
    detector = BoardDetector(board)
    detections = []
    for path in tqdm(files, desc="detect", unit="image"):
        bgr = cv2.imread(str(path))
        if bgr is None:
            raise CalibrationError(f"intrinsics: cannot read image {path}")
        detections.append(detector.detect(bgr[:, :, ::-1].copy()))
    result = calibrate_intrinsics(detections)
    with Store.open(cfg.data_dir, cfg.database_url) as store:
        stored = save_intrinsics(store, args.camera, result, board)
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

    from robolearn.calibration.detect import BoardDetector
    from robolearn.calibration.handeye import board_pose, calibrate_hand_eye
    from robolearn.calibration.intrinsics import calibrate_intrinsics
    from robolearn.calibration.sim import BoardScene
    from robolearn.config.hardware import CharucoBoardConfig
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


def _ask(prompt: str) -> None:
    """Show a prompt and wait for Enter on stdin.

    Raises:
        CalibrationError: stdin ended (nothing is stored).
    """
    import sys

    from tqdm import tqdm

    tqdm.write(prompt)
    if not sys.stdin.readline():
        raise CalibrationError("calibration: input ended before every pose was taught; "
                               "nothing stored")


def main_workspace(args: argparse.Namespace) -> int:
    import zmq
    from tqdm import tqdm

    from robolearn.calibration.live import LiveRig, View, capture_views
    from robolearn.calibration.results import save_calibration
    from robolearn.calibration.workspace import teach_box
    from robolearn.store import Store

    cfg = config_from_args(args)
    if args.points < 2:
        raise CalibrationError(f"workspace: --points {args.points}; teach at least 2 opposite "
                               "corners")
    ctx = zmq.Context()
    try:
        with LiveRig(cfg, ctx) as rig, tqdm(total=args.points, desc="corners",
                                            unit="pose") as bar:
            def taught(i: int, view: View) -> bool:
                bar.update()
                p = view.base_from_tcp[:3, 3]
                tqdm.write(f"captured pose {i + 1}: x {p[0]:.3f} y {p[1]:.3f} z {p[2]:.3f} m")
                return True

            views = capture_views(
                rig, args.points,
                lambda i: _ask(f"move the TCP to corner {i + 1}/{args.points} of the safe box, "
                               "hold still and press Enter"), on_view=taught)
    finally:
        ctx.term()
    result = teach_box([v.base_from_tcp[:3, 3] for v in views], margin_m=args.margin_mm / 1000)
    with Store.open(cfg.data_dir, cfg.database_url) as store:
        stored = save_calibration(store, "workspace", cfg.robot.name, result)
    lo, hi = result.workspace_min_m, result.workspace_max_m
    print(f"{cfg.robot.name}: workspace box {tuple(round(v, 3) for v in lo)} .. "
          f"{tuple(round(v, 3) for v in hi)} m; stored version {stored.version} at "
          f"{stored.path}; it narrows safety.workspace_* from the next run start", flush=True)
    return 0


def main_handeye(args: argparse.Namespace) -> int:
    import numpy as np
    import zmq
    from tqdm import tqdm

    from robolearn.calibration.detect import BoardDetector, Detection
    from robolearn.calibration.handeye import board_pose, calibrate_hand_eye
    from robolearn.calibration.intrinsics import calibrate_intrinsics
    from robolearn.calibration.live import LiveRig, View, capture_views
    from robolearn.calibration.results import latest_calibration, save_calibration, save_intrinsics
    from robolearn.store import Store

    cfg = config_from_args(args)
    if args.views < 3:
        raise CalibrationError(f"hand-eye: --views {args.views}; need at least 3 (10-20 "
                               "recommended)")
    board = _board(args)
    detector = BoardDetector(board)
    stored_k = None
    if not args.fit_intrinsics:
        with Store.open(cfg.data_dir, cfg.database_url) as store:
            stored_k = latest_calibration(store, "intrinsics", args.camera)
        if stored_k is None:
            raise CalibrationError(f"hand-eye: no stored intrinsics for {args.camera}; run "
                                   "`robolearn calibrate intrinsics` first or pass "
                                   "--fit-intrinsics")
    dets: list[Detection] = []
    ctx = zmq.Context()
    try:
        with LiveRig(cfg, ctx, camera=args.camera) as rig, \
                tqdm(total=args.views, desc="views", unit="view") as bar:
            def judge(i: int, view: View) -> bool:
                assert view.image is not None
                d = detector.detect(view.image)
                if d is None or d.count < 6:
                    tqdm.write(f"board not found in view {i + 1} ({0 if d is None else d.count} "
                               "corners); move so the whole board is in sight and retry")
                    return False
                dets.append(d)
                bar.update()
                tqdm.write(f"captured view {i + 1}: {d.count} corners")
                return True

            views = capture_views(
                rig, args.views,
                lambda i: _ask(f"pose {i + 1}/{args.views}: tilt the gripper 15-30 degrees "
                               "about a new axis with the board in view, hold still, Enter"),
                on_view=judge)
    finally:
        ctx.term()
    intr = calibrate_intrinsics(dets) if args.fit_intrinsics else None
    if intr is not None:
        k, dist, size = intr.k, np.asarray(intr.dist_coeffs), (intr.image_width,
                                                              intr.image_height)
    else:
        assert stored_k is not None
        data = stored_k.data
        k, dist = np.asarray(data["camera_matrix"]), np.asarray(data["dist_coeffs"])
        size = (data["image_width"], data["image_height"])
    if dets[0].image_size != tuple(size):
        raise CalibrationError(f"hand-eye: {args.camera} sends {dets[0].image_size} images "
                               f"but its intrinsics are for {tuple(size)}; recalibrate them "
                               "at this resolution")
    result = calibrate_hand_eye([v.base_from_tcp for v in views],
                                [board_pose(d, k, dist) for d in dets], mode=args.mode)
    with Store.open(cfg.data_dir, cfg.database_url) as store:
        if intr is not None:
            save_intrinsics(store, args.camera, intr, board)
        stored = save_calibration(store, "hand_eye", args.camera, result)
    t = result.matrix[:3, 3] * 1000
    print(f"{args.camera} ({args.mode}): {result.method}, translation {t.round(1).tolist()} mm, "
          f"residual {result.residual_mm:.2f} mm / {result.residual_deg:.3f} deg; stored "
          f"version {stored.version} at {stored.path}", flush=True)
    return 0
