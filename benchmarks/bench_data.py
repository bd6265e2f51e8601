"""Throughput of the training data pipeline on this machine (CPU): prints a table.

    python benchmarks/bench_data.py                 # ~40 minutes on 2 cores (every row, 2 rounds)
    python benchmarks/bench_data.py --quick         # 224 px only, ~6 minutes
    python benchmarks/bench_data.py --sizes 518 --sources tfds     # the real-data path at the training size

Rows: synthetic scenes rendered on the fly, and the same kind of scenes pre-rendered into a TFDS (ArrayRecord) dataset
(what a training run on real data reads), at two image sizes, built in the calling process (workers=0) or by grain
worker processes, each with three augmentation settings (``AUGS``) in the same run. samples/s counts samples (one
scene's S frames each); images/s counts real (unpadded) frames.
The machine's load average is printed: on a shared machine the numbers are upper bounds on the time, not targets.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time

import numpy as np
from absl import flags

from vggt_jax.data import config as data_config
from vggt_jax.data import pipeline
from vggt_jax.data.synthetic import SyntheticScene, SyntheticSource

# Every row runs the official augmentations (colour, grey, scale crops); "paper" adds exposure, motion blur and lens
# distortion at configs/finetune.py's rates, "all" applies each of them to every frame (the worst case).
AUGS = {
    "official": dict(exposure_p=0.0, blur_p=0.0, distortion_p=0.0),
    "paper": data_config.PAPER_AUGS,
    "all": dict(exposure_p=1.0, blur_p=1.0, distortion_p=1.0),
}


def _bench_iterator(cfg, source, num_batches: int) -> dict:
    it = pipeline.make_train_iterator(cfg, seed=0, process_index=0, process_count=1, source=source)
    try:
        for _ in range(1 + 2 * cfg.num_workers):  # warm-up: worker start-up, their first batches, scene caches
            next(it)
        # Workers hold up to workers x worker_buffer_size finished batches: time several times that many, or the
        # row measures the buffer.
        num_batches = max(num_batches, 4 * cfg.num_workers * cfg.worker_buffer_size)
        start = time.perf_counter()
        samples = images = padded = 0
        for _ in range(num_batches):
            batch = next(it)
            samples += batch["frame_mask"].shape[0]
            images += int(batch["frame_mask"].sum())
            padded += batch["frame_mask"].size
        elapsed = time.perf_counter() - start
    finally:
        if hasattr(it, "close"):
            it.close()
    return dict(
        batch_ms=1000 * elapsed / num_batches,
        samples=samples / elapsed,
        images=images / elapsed,
        pad=1 - images / padded,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller images and fewer batches")
    parser.add_argument("--batches", type=int, default=None, help="timed batches per row")
    parser.add_argument("--workers", type=int, nargs="*", default=[0, 2], help="grain worker counts to try")
    parser.add_argument("--augs", nargs="*", default=list(AUGS), choices=list(AUGS), help="augmentation settings")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per row; the best is kept")
    parser.add_argument("--sizes", type=int, nargs="*", default=None, help="img_size values (224 and/or 518)")
    parser.add_argument("--sources", nargs="*", default=["synthetic", "tfds"], choices=["synthetic", "tfds"])
    args = parser.parse_args()
    flags.FLAGS.mark_as_parsed()  # grain worker processes read absl flags
    sizes = args.sizes or ([224] if args.quick else [224, 518])
    num_batches = args.batches or (3 if args.quick else 4)
    load0 = os.getloadavg()[0]

    scene_times = []
    for seed in range(3):
        start = time.perf_counter()
        SyntheticScene(seed, num_frames=8, height=140, width=140).render()
        scene_times.append(time.perf_counter() - start)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from machine import machine_line

    print(machine_line())
    print(f"synthetic scene 140x140, 8 frames, rendered: {1000 * min(scene_times):.0f} ms (best of 3)\n")

    rows, builds = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for img_size in sizes:
            src_h, src_w = (192, 256) if img_size == 224 else (384, 512)
            synthetic = SyntheticSource(num_scenes=8, num_frames=12, height=src_h, width=src_w, seed=0)
            import tensorflow_datasets as tfds

            from vggt_jax.data.tfds_builder import TfdsSceneSource, build_tfds

            tfds.disable_progress_bar()

            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # TFDS prints its own progress
                build_tfds(os.path.join(tmp, str(img_size)), {"train": synthetic})
            build_s = time.perf_counter() - start
            tfds_source = TfdsSceneSource(os.path.join(tmp, str(img_size)), "train")
            cfg = data_config.get_config()
            cfg.img_size = img_size
            for name, source in (("synthetic", synthetic), ("tfds", tfds_source)):
                if name not in args.sources:
                    continue
                for workers in args.workers:
                    cfg.num_workers = workers
                    best = {}
                    # Settings alternate (A B C, C B A, ...) and each keeps its best round: a machine's drift
                    # over the minutes of a row does not favour the setting measured first.
                    for round_ in range(args.rounds):
                        for augs in args.augs if round_ % 2 == 0 else args.augs[::-1]:
                            cfg.augs.update(AUGS[augs])
                            r = _bench_iterator(cfg, source, num_batches)
                            if augs not in best or r["images"] > best[augs]["images"]:
                                best[augs] = r
                    rows += [(name, f"{src_w}x{src_h}", img_size, workers, augs, best[augs]) for augs in args.augs]
            builds.append(f"tfds build of {8 * 12} frames {src_w}x{src_h}: {build_s:.1f} s")

    print(
        f"\nconfig: default data config (S 2-24 padded to {tuple(cfg.frame_buckets)}, "
        f"{cfg.max_images_per_batch} images per batch, aspect {tuple(cfg.aspect_ratios)}, "
        f"{cfg.num_tracks} tracks); {num_batches} timed batches per row (at least 4 x the workers' buffers), "
        f"best of {args.rounds} alternating rounds\n"
    )
    header = (
        "| source | source frames | img_size | workers | augmentations | ms / batch | samples/s | images/s "
        "| vs official augs | padding |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    official = {row[:4]: row[5]["images"] for row in rows if row[4] == "official"}
    for name, frames, size, workers, augs, r in rows:
        base = official.get((name, frames, size, workers))
        ratio = f"{r['images'] / base:.2f}x" if base else "-"
        print(
            f"| {name} | {frames} | {size} | {workers} | {augs} | {r['batch_ms']:.0f} | {r['samples']:.2f} | "
            f"{r['images']:.1f} | {ratio} | {100 * r['pad']:.0f}% |"
        )
    print("augmentations: " + "; ".join(f"{k} {v}" for k, v in AUGS.items()))
    print("\n".join(["", *builds]))
    print(
        f"load average (1 min) before / after: {load0:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
        f"numpy {np.__version__}"
    )


if __name__ == "__main__":
    main()
