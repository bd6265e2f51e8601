"""Throughput of the training data pipeline on this machine (CPU): prints a table.

    python benchmarks/bench_data.py                 # ~2-4 minutes on 2 cores
    python benchmarks/bench_data.py --quick         # smaller sizes, ~1 minute

Rows: synthetic scenes rendered on the fly, and the same kind of scenes pre-rendered into a TFDS (ArrayRecord) dataset
(what a training run on real data reads), at two image sizes, built in the calling process (workers=0) or by grain
worker processes. samples/s counts samples (one scene's S frames each); images/s counts real (unpadded) frames.
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


def _bench_iterator(cfg, source, num_batches: int) -> dict:
    it = pipeline.make_train_iterator(cfg, seed=0, process_index=0, process_count=1, source=source)
    try:
        next(it)  # warm-up: worker start-up, first scene construction
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
    args = parser.parse_args()
    flags.FLAGS.mark_as_parsed()  # grain worker processes read absl flags
    sizes = [224] if args.quick else [224, 518]
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
                for workers in args.workers:
                    cfg.num_workers = workers
                    r = _bench_iterator(cfg, source, num_batches)
                    rows.append((name, f"{src_w}x{src_h}", img_size, workers, r))
            builds.append(f"tfds build of {8 * 12} frames {src_w}x{src_h}: {build_s:.1f} s")

    print(
        f"\nconfig: default data config (S 2-24 padded to {tuple(cfg.frame_buckets)}, "
        f"{cfg.max_images_per_batch} images per batch, aspect {tuple(cfg.aspect_ratios)}, "
        f"{cfg.num_tracks} tracks, augmentation on); {num_batches} timed batches per row\n"
    )
    header = "| source | source frames | img_size | workers | ms / batch | samples/s | images/s | padding |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name, frames, size, workers, r in rows:
        print(
            f"| {name} | {frames} | {size} | {workers} | {r['batch_ms']:.0f} | {r['samples']:.2f} | "
            f"{r['images']:.1f} | {100 * r['pad']:.0f}% |"
        )
    print("\n".join(["", *builds]))
    print(
        f"load average (1 min) before / after: {load0:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
        f"numpy {np.__version__}"
    )


if __name__ == "__main__":
    main()
