"""IntrinsicsSession.set_board: detection uses the new board at once (even on a frame already
detected with the old one), views of the old board are dropped, the same board again keeps
them. The frames come over the wire: the board head-on, published as the wrist camera."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import zmq

from robolearn.calibration.board import board_image
from robolearn.calibration.session import IntrinsicsSession
from robolearn.config import RunConfig, parse_config
from robolearn.config.hardware import CharucoBoardConfig
from robolearn.protocol import Publisher
from tests.calibration.conftest import BOARD
from tests.conftest import run_config_dict

CORNERS = (BOARD.squares_x - 1) * (BOARD.squares_y - 1)  # every inner corner, head-on


@contextmanager
def feed(ctx: zmq.Context, cfg: RunConfig, image: np.ndarray
         ) -> Iterator[threading.Event]:
    """Publish `image` as the wrist camera's frames at 50 Hz while the yielded event is set
    (set on entry); the socket lives on the feeding thread."""
    on, stop = threading.Event(), threading.Event()
    on.set()

    def run() -> None:
        with Publisher(ctx, cfg.robot.frames_address, "board-feed",
                       security=cfg.socket_security(cfg.robot.frames_address, "driver")) as pub:
            index = 0
            while not stop.wait(0.02):
                if on.is_set():
                    pub.publish("camera_frame", {"camera": "wrist", "stamp_ns": time.monotonic_ns(),
                                                 "frame_index": index}, {"image": image})
                    index += 1

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield on
    finally:
        stop.set()
        thread.join(timeout=5)


def test_set_board_detects_with_it_and_drops_views_of_the_old_one(
        sock_dir: Path, tmp_path: Path) -> None:
    cfg = parse_config(run_config_dict(sock_dir, tmp_path / "data"))
    image = np.repeat(board_image(BOARD, 60, 30)[:, :, None], 3, axis=2)
    other = CharucoBoardConfig(dictionary="DICT_5X5_100")  # none of its markers in the image
    ctx = zmq.Context()
    session = IntrinsicsSession(cfg, ctx, "wrist")
    try:
        with feed(ctx, cfg, image) as on:
            assert session.board == BOARD
            assert session.capture().detection.count == CORNERS
            session.capture()
            on.clear()
            time.sleep(0.2)  # the last frames in flight arrive; from here on, one frame
            before = session.live()
            assert before.corners == CORNERS

            assert session.set_board(other) == 2
            assert session.views == [] and session.board == other
            after = session.live()
            assert after.frame_index == before.frame_index and after.corners == 0

            assert session.set_board(other) == 0
            assert session.set_board(BOARD) == 0
            assert session.live().corners == CORNERS

            on.set()
            session.capture()
            assert session.set_board(BOARD) == 0 and len(session.views) == 1
            assert session.set_board(other) == 1 and session.views == []
    finally:
        session.close()
        ctx.term()
