"""LeRobot's side of the interchange tests, run with .venvs/lerobot's python (never imported
by robolearn or pytest: it needs the real `lerobot` package, which lives only in that venv).

Each command prints one JSON object as its last stdout line; arrays go to .npz files.

    python peer.py write DIR KIND [KIND ...]     (KIND: video-h264, video-av1, image)
        Per kind, DIR/KIND: a dataset written by LeRobot's own writer (create / add_frame /
        save_episode / finalize): 6-D state and action, rewards, done, success, two task
        texts; DIR/KIND.npz holds what was fed in and the frames LeRobot decodes back.
    python peer.py verify OUT ROOT [ROOT ...]
        Each ROOT: load offline, decode one frame in this process, then every frame in
        DataLoader workers (num_workers=2); ROOT.decoded.npz holds each camera's frames.
        The first ROOT also goes through delete_episodes, split_dataset and merge_datasets
        (into OUT), each result's meta/stats.json checked whole and the result loaded, and
        one optimiser step of a small ACT policy.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATS = ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99")
TASKS = ("pick up the red block", "put the block in the bowl")
STATE_DIM = 6
HEIGHT, WIDTH = 24, 32


def _dataset(root: Path, **kwargs: Any) -> Any:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(repo_id=f"local/{root.name}", root=root, **kwargs)


def _camera_keys(dataset: Any) -> list[str]:
    return list(dataset.meta.camera_keys)


def _frames_chw_to_hwc(images: torch.Tensor) -> np.ndarray:
    # LeRobot returns float images in [0, 1], [C, H, W]; robolearn stores uint8 [H, W, C].
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def write(root: Path, kind: str, episodes: int) -> dict[str, Any]:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    image_dtype = "image" if kind == "image" else "video"
    vcodec = {"video-h264": "h264", "video-av1": "libsvtav1", "image": "h264"}[kind]
    cameras = ("observation.images.front", "observation.images.wrist")
    features: dict[str, Any] = {
        "observation.state": {"dtype": "float32", "shape": (STATE_DIM,),
                              "names": [f"joint_{i}" for i in range(STATE_DIM)]},
        "action": {"dtype": "float32", "shape": (STATE_DIM,),
                   "names": [f"joint_{i}" for i in range(STATE_DIM)]},
        "next.reward": {"dtype": "float32", "shape": (1,), "names": None},
        "next.done": {"dtype": "bool", "shape": (1,), "names": None},
        "next.success": {"dtype": "bool", "shape": (1,), "names": None},
    }
    for key in cameras:
        features[key] = {"dtype": image_dtype, "shape": (HEIGHT, WIDTH, 3),
                         "names": ["height", "width", "channels"]}
    dataset = LeRobotDataset.create(repo_id=f"local/{root.name}", fps=10, features=features,
                                    root=root, robot_type="so100", use_videos=True,
                                    vcodec=vcodec)
    rng = np.random.default_rng(7)
    fed: dict[str, list[np.ndarray]] = {"state": [], "action": [], "reward": [], "done": [],
                                        "success": [], "episode": []}
    fed_images: dict[str, list[np.ndarray]] = {key: [] for key in cameras}
    for e in range(episodes):
        length = 6 + 3 * e
        for t in range(length):
            last = t == length - 1
            frame: dict[str, Any] = {
                "observation.state": rng.normal(size=STATE_DIM).astype(np.float32),
                "action": rng.uniform(-1, 1, STATE_DIM).astype(np.float32),
                "next.reward": np.array([1.0 if last and e % 2 == 0 else 0.0], np.float32),
                "next.done": np.array([last]),
                "next.success": np.array([last and e % 2 == 0]),
                "task": TASKS[e % 2],
            }
            for c, key in enumerate(cameras):
                # Smooth gradients with a moving square: video codecs keep them close.
                yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
                image = np.stack([(xx * 8 + t * 5) % 256, (yy * 10 + c * 60) % 256,
                                  np.full_like(xx, 40 * e % 256)], -1).astype(np.uint8)
                image[4 + t % 8:10 + t % 8, 6:14] = 255
                frame[key] = image
                fed_images[key].append(image)
            fed["state"].append(frame["observation.state"])
            fed["action"].append(frame["action"])
            fed["reward"].append(frame["next.reward"][0])
            fed["done"].append(frame["next.done"][0])
            fed["success"].append(frame["next.success"][0])
            fed["episode"].append(np.int64(e))
            dataset.add_frame(dict(frame))
        dataset.save_episode()
    dataset.finalize()

    # What LeRobot itself decodes back from what it wrote (the truth for lossy video).
    reread = _dataset(root)
    decoded = {key: _frames_chw_to_hwc(torch.stack([reread[i][key] for i in range(len(reread))]))
               for key in cameras}
    arrays = {k: np.stack(v) for k, v in fed.items()}
    arrays.update({f"fed/{k}": np.stack(v) for k, v in fed_images.items()})
    arrays.update({f"decoded/{k}": v for k, v in decoded.items()})
    np.savez(root.with_suffix(".npz"), **arrays)
    return {"frames": len(reread), "episodes": reread.meta.total_episodes,
            "tasks": list(reread.meta.tasks.index), "cameras": list(cameras)}


def check(root: Path) -> dict[str, Any]:
    dataset = _dataset(root)
    keys = _camera_keys(dataset)
    first = dataset[0]  # one decode in this process first, as the failure had it
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2, shuffle=False)
    frames: dict[str, list[torch.Tensor]] = {key: [] for key in keys}
    index: list[torch.Tensor] = []
    for batch in loader:
        for key in keys:
            frames[key].append(batch[key])
        index.append(batch["index"])
    np.savez(root.with_suffix(".decoded.npz"), index=torch.cat(index).numpy(),
             **{key: _frames_chw_to_hwc(torch.cat(v)) for key, v in frames.items()})
    return {"frames": len(dataset), "cameras": keys, "backend": dataset.video_backend,
            "first_task": first["task"], "tasks": list(dataset.meta.tasks.index)}


def _stats_whole(dataset: Any) -> dict[str, list[str]]:
    """Per numeric feature, the statistics its meta/stats.json lacks (empty when whole)."""
    stats = json.loads((Path(dataset.root) / "meta" / "stats.json").read_text())
    missing: dict[str, list[str]] = {}
    for key, feature in dataset.meta.features.items():
        if feature["dtype"] in ("string",):
            continue
        lacks = [s for s in STATS if s not in stats.get(key, {})]
        if lacks:
            missing[key] = lacks
    return missing


def tools(root: Path, out: Path) -> dict[str, Any]:
    from lerobot.datasets.dataset_tools import delete_episodes, merge_datasets, split_dataset

    source = _dataset(root)
    report: dict[str, Any] = {"source_missing": _stats_whole(source)}
    deleted = delete_episodes(source, [0], output_dir=out / "deleted", repo_id="local/deleted")
    rest = list(range(1, source.meta.total_episodes))
    splits = split_dataset(source, {"train": [0], "val": rest}, output_dir=out / "split")
    merged = merge_datasets([splits["train"], splits["val"]], output_repo_id="local/merged",
                            output_dir=out / "merged")
    for name, result in (("deleted", deleted), ("train", splits["train"]),
                         ("val", splits["val"]), ("merged", merged)):
        reloaded = _dataset(Path(result.root))
        keys = _camera_keys(reloaded)
        sample = reloaded[len(reloaded) - 1]
        report[name] = {"episodes": reloaded.meta.total_episodes, "frames": len(reloaded),
                        "missing": _stats_whole(reloaded),
                        "decoded": all(sample[k].shape[0] == 3 for k in keys),
                        "state_mean": reloaded.meta.stats["observation.state"]["mean"].tolist()}
    return report


def train(root: Path) -> dict[str, Any]:
    from lerobot.configs.types import FeatureType
    from lerobot.datasets.utils import dataset_to_policy_features
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    dataset = _dataset(root)
    features = dataset_to_policy_features(dataset.meta.features)
    outputs = {k: f for k, f in features.items() if f.type is FeatureType.ACTION}
    inputs = {k: f for k, f in features.items()
              if k not in outputs and f.type in (FeatureType.STATE, FeatureType.VISUAL)}
    config = ACTConfig(input_features=inputs, output_features=outputs, chunk_size=2,
                       n_action_steps=2, dim_model=32, n_heads=2, dim_feedforward=64,
                       n_encoder_layers=1, n_decoder_layers=1, latent_dim=8,
                       pretrained_backbone_weights=None, device="cpu")
    policy = ACTPolicy(config)
    preprocess, _ = make_pre_post_processors(config, dataset_stats=dataset.meta.stats)
    delta = {"action": [i / dataset.fps for i in config.action_delta_indices]}
    dataset = _dataset(root, delta_timestamps=delta)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2, shuffle=True)
    batch = preprocess(next(iter(loader)))
    optimiser = torch.optim.AdamW(policy.parameters(), lr=1e-4)
    loss, _ = policy.forward(batch)
    loss.backward()
    optimiser.step()
    return {"loss": float(loss), "inputs": sorted(inputs), "outputs": sorted(outputs)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write")
    w.add_argument("dir", type=Path)
    w.add_argument("kinds", nargs="+", choices=("video-h264", "video-av1", "image"))
    v = sub.add_parser("verify")
    v.add_argument("out", type=Path)
    v.add_argument("roots", type=Path, nargs="+")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {}
    if args.command == "write":
        for kind in args.kinds:
            result[kind] = write(args.dir / kind, kind, episodes=3)
    else:
        result["check"] = {str(root): check(root) for root in args.roots}
        result["tools"] = tools(args.roots[0], args.out)
        result["train"] = train(args.roots[0])
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
