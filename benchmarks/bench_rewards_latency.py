"""Reward source latency per frame at batch 1 and at the control loop's batch (one frame per
camera), on the CPU (and CUDA when present).

    python -m benchmarks.bench_rewards_latency --quick

Sources: the success classifier (EfficientNet-Lite0 at 64 px + head, untrained weights:
latency does not depend on them), the preference ensemble (3 members, state inputs) and
CLIP (a randomly initialised ViT-B-32 image tower: real size, no weights needed for timing).
Results are appended to benchmarks/results.jsonl.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from benchmarks.results import append_result
from robolearn.config.rewards import ClassifierConfig, PreferenceConfig
from robolearn.rewards.classifier import FORMAT, ClassifierHead, SuccessClassifier
from robolearn.rewards.encoders import clip_normalise, resize, to_float
from robolearn.rewards.preference import PreferenceModel, RewardEnsemble


def _time_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no CLIP")
    parser.add_argument("--cameras", type=int, default=2, help="control-loop batch (cameras)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: what the actor uses for reward models)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    repeats = 5 if args.quick else 20
    cams = args.cameras
    rng = np.random.default_rng(0)
    metrics: dict[str, float] = {}

    cfg = ClassifierConfig(cameras=tuple(f"cam{i}" for i in range(cams)))
    head = ClassifierHead(cams, (1280, 2, 2), cfg)
    clf = SuccessClassifier({"kind": "classifier", "format": FORMAT,
                             "config": cfg.model_dump(mode="json"), "cameras": list(cfg.cameras),
                             "encoder": "efficientnet_lite0", "input_size": 64,
                             "feature_shape": [1280, 2, 2], "head": head.state_dict(),
                             "threshold": 0.5, "report": {}})
    for batch in (1, 8):
        frames = {c: rng.integers(0, 256, (batch, 84, 84, 3), dtype=np.uint8) for c in cfg.cameras}
        ms = _time_ms(lambda f=frames: clf.predict(f), repeats)
        # Per frame = per camera image scored.
        metrics[f"classifier_ms_per_step_batch{batch}"] = ms / batch
        metrics[f"classifier_ms_per_frame_batch{batch * cams}"] = ms / (batch * cams)

    pref = PreferenceModel(PreferenceConfig(ensemble=3), RewardEnsemble(15, 3, 128))
    for batch in (1, cams):
        features = rng.normal(size=(batch, 15)).astype(np.float32)
        metrics[f"preference_ms_per_step_batch{batch}"] = (
            _time_ms(lambda x=features: pref.rewards(x), repeats * 10) / batch)

    if not args.quick:
        import open_clip

        model = open_clip.create_model("ViT-B-32", pretrained=None).eval()
        for batch in (1, cams):
            frames = rng.integers(0, 256, (batch, 84, 84, 3), dtype=np.uint8)

            def clip_once(f=frames) -> None:
                with torch.inference_mode():
                    model.encode_image(clip_normalise(resize(to_float(f), 224)))

            metrics[f"clip_vitb32_ms_per_frame_batch{batch}"] = _time_ms(clip_once, repeats) / batch

    record = append_result("rewards_latency", metrics, device="cpu", cameras=cams,
                           threads=torch.get_num_threads(), quick=args.quick)
    print(record)
    return record


if __name__ == "__main__":
    main()
