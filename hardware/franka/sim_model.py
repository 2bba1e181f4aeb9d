"""Build the FR3 MJCF that the `franka-sim` protocol server loads (through `$FR3_MJCF`).

Example (run with the server's own interpreter, which has franka_sim and its mujoco):

    .venvs/franka-sim/bin/python hardware/franka/sim_model.py .venvs/franka-sim/fr3.xml

franka-sim otherwise fetches its model with robot_descriptions at start-up, which needs the
network. The package ships `models/fr3.urdf` but not the meshes it names, so the arm is built
from that URDF's kinematics and inertias alone: visual and collision meshes are stripped (the
server then skips self-collision, which it reports and tolerates). This script imports only
the standard library, mujoco and franka_sim, because it runs in the server's virtual
environment (numpy 1.26 / mujoco 3.2), not in robolearn's.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

log = logging.getLogger(__name__)

# franka-sim drives the joints with its own PD torques (gains up to 4500); without armature
# the light distal links make that stiff loop unstable at the 1 ms step, without damping the
# arm rings after every stop.
_ARMATURE = 0.1
_DAMPING = 1.0
_ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))


def shipped_urdf() -> Path:
    """The FR3 URDF inside the installed franka_sim package."""
    import franka_sim

    path = Path(franka_sim.__file__).parent / "models" / "fr3.urdf"
    if not path.is_file():
        raise FileNotFoundError(f"franka_sim {franka_sim.__file__}: expected the FR3 URDF at "
                                f"{path}; reinstall the pinned franka-sim version")
    return path


def strip_meshes(urdf_text: str) -> str:
    """Remove every <visual> and <collision> element and add MuJoCo's compiler options.

    `fusestatic="false"` keeps `link0`, `link7` (and friends) as bodies, which the server
    looks up by name; `balanceinertia` accepts the URDF's rounded inertias.
    """
    root = ET.fromstring(urdf_text)
    if root.tag != "robot":
        raise ValueError(f"expected a URDF <robot> root element, found <{root.tag}>")
    for link in root.iter("link"):
        for child in list(link):
            if child.tag in ("visual", "collision"):
                link.remove(child)
    mujoco_tag = ET.SubElement(root, "mujoco")
    ET.SubElement(mujoco_tag, "compiler", fusestatic="false", balanceinertia="true",
                  discardvisual="true")
    return ET.tostring(root, encoding="unicode")


def build_mjcf(urdf_path: Path) -> str:
    """Compile the stripped URDF with MuJoCo and return the MJCF text.

    Raises:
        ValueError: the model lacks a joint or body franka-sim requires.
    """
    import mujoco

    with tempfile.TemporaryDirectory() as tmp:
        stripped = Path(tmp) / "fr3.urdf"
        stripped.write_text(strip_meshes(urdf_path.read_text()))
        spec = mujoco.MjSpec.from_file(str(stripped))
    names = {j.name for j in spec.joints}
    missing = [j for j in _ARM_JOINTS if j not in names]
    if missing or spec.find_body("link7") is None:
        raise ValueError(f"{urdf_path}: franka-sim needs joints {list(_ARM_JOINTS)} and body "
                         f"link7; missing joints {missing}")
    for joint in spec.joints:
        if joint.name in _ARM_JOINTS:
            joint.armature = _ARMATURE
            joint.damping = _DAMPING
    spec.compile()  # fails here, not in the server, if the edits broke the model
    return spec.to_xml()


def write_atomically(path: Path, text: str) -> None:
    """Write text to path through a temp file and a rename (no half-written model)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="where to write the MJCF (e.g. fr3.xml)")
    parser.add_argument("--urdf", type=Path, default=None,
                        help="FR3 URDF to convert (default: the one franka_sim ships)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    urdf = args.urdf or shipped_urdf()
    write_atomically(args.out, build_mjcf(urdf))
    log.info("wrote %s from %s", args.out, urdf)
    return 0


if __name__ == "__main__":
    sys.exit(main())
