"""Image-feature tracks then bundle adjustment on the model-free case (issue #39), and the SIFT library chosen.

    python benchmarks/bench_features.py                     # seeds 0-9, 518 px, estimated and known intrinsics
    python benchmarks/bench_features.py --seeds 3 --opencv  # also OpenCV's SIFT in place of pycolmap's

Per seed: synthetic scene (8 frames of an orbit, 392x518, texture_scale 2 for SIFT), cameras perturbed
as in case 5a (2 deg, 5% translation, 5% focal), depth with 2% noise; tracks from SIFT on the rendered frames (the
ground truth is not in them); BA. Reports the WORST frame's rotation error (degrees, in camera 0's frame) and focal
error, the tracks, and the classical tracking time per frame (extract + pair choice + match + verify + merge).
``--opencv`` (needs opencv-python-headless, not a dependency) runs the same with OpenCV's SIFT.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_line  # noqa: E402

from vggt_jax.evaluate.metrics import focal_errors, frame_rotation_errors  # noqa: E402
from vggt_jax.evaluate.model_free import model_free_case  # noqa: E402
from vggt_jax.reconstruct import BAOptions  # noqa: E402
from vggt_jax.reconstruct.features import GREY  # noqa: E402

CASE = dict(height=392, width=518, texture_scale=2.0)


def opencv_extract(images, masks, opts):
    """``reconstruct.features.extract`` with OpenCV's SIFT (RootSIFT descriptors, unit norm)."""
    import cv2

    sift = cv2.SIFT_create(nfeatures=opts.max_features)
    out = []
    for s, image in enumerate(np.asarray(images)):
        grey = np.round(np.clip(np.tensordot(GREY, image, 1), 0, 1) * 255).astype(np.uint8)
        keypoints, desc = sift.detectAndCompute(grey, None if masks is None else masks[s].astype(np.uint8))
        xy = np.array([k.pt for k in keypoints], np.float64).reshape(-1, 2)  # OpenCV: pixel centres at integers
        desc = np.sqrt(desc / np.maximum(desc.sum(1, keepdims=True), 1e-12)).astype(np.float32)
        out.append((xy, desc / np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-12)))
    return out


def run(seed: int, known: bool, extractor=None) -> dict:
    tic = time.perf_counter()
    case = model_free_case(seed, tracker="features", known_intrinsics=known, extractor=extractor, **CASE)
    case_seconds = time.perf_counter() - tic
    result = case.adjust(BAOptions(refine_focal_length=not known))
    report = case.report
    return dict(
        seed=seed,
        rot_max=float(frame_rotation_errors(result.extrinsics, case.gt["extrinsics"]).max()),
        focal_max=float(np.abs(focal_errors(result.intrinsics, case.gt["intrinsics"])).max()),
        held=len(result.report["held_out_frames"]),
        keypoints=float(np.mean(report["keypoints_per_frame"])),
        tracks=report["tracks"],
        kept=result.report["points_kept"],
        wrong_kept=int((case.outlier[:, result.point_index] & result.observed).sum()),
        tracking_per_frame=report["seconds_per_frame"],
        ba_seconds=result.report["seconds"],
        case_seconds=case_seconds,
    )


def table(rows: list[dict], title: str) -> str:
    lines = [
        f"### {title}",
        "",
        "| seed | worst frame rotation (deg) | worst frame focal | frames held out | keypoints/frame | tracks | "
        "points kept | wrong matches kept | tracking s/frame | BA s |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['seed']} | {r['rot_max']:.3f} | {100 * r['focal_max']:.3f}% | {r['held']} | {r['keypoints']:.0f} | "
            f"{r['tracks']} | {r['kept']} | {r['wrong_kept']} | {r['tracking_per_frame']:.3f} | {r['ba_seconds']:.2f} |"
        )
    rot = np.array([r["rot_max"] for r in rows])
    focal = np.array([r["focal_max"] for r in rows])
    per_frame = np.median([r["tracking_per_frame"] for r in rows])
    lines.append(
        f"| all | max {rot.max():.3f}, median {np.median(rot):.3f} | max {100 * focal.max():.3f}% | "
        f"{sum(r['held'] for r in rows)} | | | | | median {per_frame:.3f} | |"
    )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--opencv", action="store_true")
    args = parser.parse_args(argv)
    print(machine_line())
    print(f"case: {CASE}, 8 frames, orbit; pycolmap SIFT unless named\n")
    ways = [("pycolmap", None)] + ([("opencv", opencv_extract)] if args.opencv else [])
    for name, extractor in ways:
        for known in (False, True):
            rows = [run(seed, known, extractor) for seed in range(args.seeds)]
            title = f"{name} SIFT, {'known' if known else 'estimated'} intrinsics"
            print(table(rows, title) + "\n", flush=True)


if __name__ == "__main__":
    main()
