"""Long sequences: one forward over every frame against windowed inference (``vggt_jax.reconstruct.windows``).

  python benchmarks/bench_windows.py                      # tiny model, 56x56, 25..400 frames, window 24/12
  python benchmarks/bench_windows.py --frames 50,100 --window 32 --overlap 16 --json out.json

Each (frames, mode) runs in a fresh subprocess on random images with the 49M-parameter ``tiny`` model (random
weights: time and memory do not depend on the values): compile first (a forward on the same shapes, not timed),
then the timed run. ``peak`` is peak RSS beyond the RSS after compiling (bench_infer's meter); the windowed run
writes its frames to memory-mapped files and drops their pages as it goes. ``one-shot`` pads to the Predictor's
frame bucket (e.g. 400 -> 512), as a user's run would. Loop closure is off (it adds one window per loop found).

``--modes infer`` runs the whole of ``infer.py`` instead (``vggt_jax.jobs.infer``: a folder of PNGs of the
``--size`` preprocessed to 518 px wide, windows, every export but tracks) with the 0.2M-parameter ``micro`` model,
so that what is measured is the pipeline around the model (loading, frames on disk, exports): its peak is the RSS
beyond the RSS before the run, compile included.

  python benchmarks/bench_windows.py --modes infer --frames 50,100,200,400 --size 392x518
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_infer import REPO, Meter  # noqa: E402
from machine import cpu_info, machine_line  # noqa: E402

GB = 1024**3


def _checkpoint(config: str, directory: str):
    """Random weights with a positive field of view (finite cameras), saved as an orbax checkpoint."""
    import jax
    import jax.numpy as jnp

    from vggt_jax.config import get_config
    from vggt_jax.convert.checkpoint import save_checkpoint
    from vggt_jax.model.random_init import random_params
    from vggt_jax.model.vggt import VGGT

    cfg = get_config(config).replace(track_head=None)
    params = random_params(VGGT(cfg), jax.ShapeDtypeStruct((1, 2, 3, 28, 28), jnp.float32))
    fc2 = params["params"]["camera_head"]["pose_branch"]["fc2"]
    fc2["kernel"] = fc2["kernel"].at[:, 7:9].set(0.0)
    fc2["bias"] = fc2["bias"].at[7:9].set(0.25)
    return save_checkpoint(os.path.join(directory, "ckpt"), cfg, params)


def infer_child(args) -> dict:
    """The whole infer.py run on ``args.frames`` PNGs (written before the meter starts)."""
    import numpy as np
    from PIL import Image

    from vggt_jax.jobs.infer import InferOptions, run

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = _checkpoint("micro", tmp)
        folder = os.path.join(tmp, "images")
        os.makedirs(folder)
        rng = np.random.default_rng(0)
        base = rng.integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
        for k in range(args.frames):  # a drifting texture, so neighbouring frames look alike
            Image.fromarray(np.roll(base, 2 * k, axis=1)).save(os.path.join(folder, f"{k:05d}.png"))
        opts = InferOptions(
            images=folder,
            out=os.path.join(tmp, "out"),
            checkpoint=str(ckpt),
            window=args.window,
            overlap=args.overlap,
            loop_closure=False,
            exports=["npz", "ply", "colmap", "transforms", "depth", "trajectory"],
        )
        meter = Meter("cpu")
        meter.start()
        t = time.perf_counter()
        run(opts)
        seconds = time.perf_counter() - t
    return dict(time_s=seconds, compile_s=float("nan"), peak_bytes=meter.peak())


def child(args) -> dict:
    if args.mode == "infer":
        return infer_child(args)
    import jax
    import jax.numpy as jnp
    import numpy as np

    from vggt_jax.config import get_config
    from vggt_jax.inference.predictor import Predictor
    from vggt_jax.model.random_init import random_params
    from vggt_jax.model.vggt import VGGT
    from vggt_jax.reconstruct.windows import WindowOptions, run_windows

    cfg = get_config(args.config).replace(track_head=None)
    h, w = args.height, args.width
    params = random_params(VGGT(cfg), jax.ShapeDtypeStruct((1, 2, 3, h, w), jnp.float32))
    fc2 = params["params"]["camera_head"]["pose_branch"]["fc2"]  # a positive field of view: finite cameras
    fc2["kernel"] = fc2["kernel"].at[:, 7:9].set(0.0)
    fc2["bias"] = fc2["bias"].at[7:9].set(0.25)
    predictor = Predictor(cfg, params, compilation_cache=False)
    images = np.random.default_rng(0).random((args.frames, 3, h, w), dtype=np.float32)
    meter = Meter("cpu")
    if args.mode == "one-shot":
        t = time.perf_counter()
        predictor(images)
        compile_s = time.perf_counter() - t
        meter.start()
        t = time.perf_counter()
        predictor(images)
    else:
        opts = WindowOptions(window=args.window, overlap=args.overlap, loop_closure=False)
        t = time.perf_counter()
        predictor(images[: args.window])
        compile_s = time.perf_counter() - t
        meter.start()
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            out = run_windows(lambda idx: predictor(images[idx]), args.frames, opts, tmp)
            del out
    seconds = time.perf_counter() - t
    return dict(time_s=seconds, compile_s=compile_s, peak_bytes=meter.peak())


def run(frames: int, mode: str, args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", mode, "--frames", str(frames)]
    cmd += ["--config", args.config, "--size", f"{args.height}x{args.width}"]
    cmd += ["--window", str(args.window), "--overlap", str(args.overlap)]
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        return dict(frames=frames, mode=mode, error=(proc.stderr or proc.stdout).strip().splitlines()[-1:])
    return dict(frames=frames, mode=mode, **json.loads(lines[-1][len("RESULT ") :]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", default="25,50,100,200,400")
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--size", default="56x56")
    parser.add_argument("--window", type=int, default=24)
    parser.add_argument("--overlap", type=int, default=12)
    parser.add_argument("--modes", default="one-shot,windowed")
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--json", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.height, args.width = (int(v) for v in args.size.split("x"))
    if args.child:
        args.mode, args.frames = args.child, int(args.frames)
        print("RESULT " + json.dumps(child(args)), flush=True)
        return
    rows = [run(int(f), m, args) for f in args.frames.split(",") for m in args.modes.split(",")]
    print(machine_line())
    model = "micro (infer)" if args.modes == "infer" else args.config
    print(f"{model}, {args.size}, float32, window {args.window} / overlap {args.overlap}, loop closure off\n")
    print("| frames | mode | compile (s) | time (s) | s / frame | peak beyond compile (GB) |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        if "error" in r:
            print(f"| {r['frames']} | {r['mode']} | error: {r['error']} | | | |")
            continue
        print(
            f"| {r['frames']} | {r['mode']} | {r['compile_s']:.1f} | {r['time_s']:.2f} | "
            f"{r['time_s'] / r['frames']:.3f} | {r['peak_bytes'] / GB:.3f} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(machine=cpu_info(), args=vars(args), rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
