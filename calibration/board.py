"""ChArUco boards: the OpenCV board object, its image, and printable PNG + PDF at true scale."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from robolearn.config.hardware import CharucoBoardConfig

log = logging.getLogger(__name__)

_M_PER_INCH = 0.0254


def make_board(cfg: CharucoBoardConfig) -> cv2.aruco.CharucoBoard:
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, cfg.dictionary))
    return cv2.aruco.CharucoBoard((cfg.squares_x, cfg.squares_y), cfg.square_length_m,
                                  cfg.marker_length_m, dictionary)


def board_size_m(cfg: CharucoBoardConfig) -> tuple[float, float]:
    """Width and height of the squares area, m."""
    return cfg.squares_x * cfg.square_length_m, cfg.squares_y * cfg.square_length_m


def board_image(cfg: CharucoBoardConfig, px_per_square: int = 100, margin_px: int = 0
                ) -> np.ndarray:
    """The board as a greyscale uint8 image, exactly `px_per_square` pixels per square."""
    w = cfg.squares_x * px_per_square + 2 * margin_px
    h = cfg.squares_y * px_per_square + 2 * margin_px
    return make_board(cfg).generateImage((w, h), marginSize=margin_px, borderBits=1)


def write_printable(cfg: CharucoBoardConfig, out_dir: Path, *, dpi: int = 300,
                    margin_m: float = 0.01) -> tuple[Path, Path]:
    """Write board.png and board.pdf whose physical size is the configured board size.

    The PNG carries its DPI and the PDF page is sized from it, so printing at 100% ("actual
    size", no fit-to-page) gives squares of exactly `square_length_m`.

    Returns:
        (png path, pdf path).
    """
    px_per_square = round(cfg.square_length_m / _M_PER_INCH * dpi)
    margin_px = round(margin_m / _M_PER_INCH * dpi)
    img = board_image(cfg, px_per_square, margin_px)
    out_dir.mkdir(parents=True, exist_ok=True)
    png, pdf = out_dir / "board.png", out_dir / "board.pdf"
    pil = Image.fromarray(img)
    pil.save(png, dpi=(dpi, dpi))
    buf = io.BytesIO()
    pil.convert("RGB").save(buf, format="PDF", resolution=float(dpi))
    pdf.write_bytes(buf.getvalue())
    true_px = cfg.square_length_m / _M_PER_INCH * dpi
    if abs(px_per_square - true_px) / true_px > 0.002:
        log.warning("board: %d px per square at %d dpi is %.2f%% off the true size; use a "
                    "higher dpi", px_per_square, dpi, 100 * abs(px_per_square - true_px) / true_px)
    return png, pdf
