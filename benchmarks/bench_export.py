"""The exported model's weights as an argument beside the programs or baked into them: size, export and load time.

    python benchmarks/bench_export.py                      # tiny (49M parameters), cpu program, 2 frames
    python benchmarks/bench_export.py --config vggt_1b --platforms cpu,cuda,tpu

Random weights (size and time do not depend on their values). Per mode: the export's wall time and the folder's
size; then in a fresh process (as a service starts): ``vggt_jax.export.load`` (deserialise, read and place the
weights), the first call (XLA compiles the program for the padded frame bucket) and the median of 3 more calls.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import json, statistics, sys, time
t = time.perf_counter()
import numpy as np
from vggt_jax.export import load
model = load(sys.argv[1])
load_s = time.perf_counter() - t
images = np.random.default_rng(0).random((int(sys.argv[2]), 3, *model.image_hw), dtype=np.float32)
t = time.perf_counter(); model(images); first = time.perf_counter() - t
walls = []
for _ in range(3):
    t = time.perf_counter(); model(images); walls.append(time.perf_counter() - t)
print("RESULT " + json.dumps(dict(load_s=load_s, first_s=first, call_s=statistics.median(walls))))
"""


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--platforms", default="cpu")
    ap.add_argument("--frames", type=int, default=2)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import jax
    import jax.numpy as jnp
    from machine import machine_line

    from vggt_jax.config import get_config
    from vggt_jax.export.build import default_image_hw, export_model
    from vggt_jax.model.random_init import random_params
    from vggt_jax.model.vggt import VGGT

    cfg = get_config(args.config)
    p = cfg.patch_size
    params = random_params(VGGT(cfg), jax.ShapeDtypeStruct((1, 2, 3, 10 * p, 10 * p), jnp.float32))
    n_params = sum(x.size for x in jax.tree.leaves(params))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("argument", "baked"):
            out = Path(tmp) / mode
            t = time.perf_counter()
            export_model(cfg, params, out, platforms=args.platforms.split(","), weights=mode)
            export_s = time.perf_counter() - t
            size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(out), str(args.frames)],
                capture_output=True,
                text=True,
                timeout=1800,
                cwd=REPO,
            )
            if proc.returncode:
                raise SystemExit(proc.stderr[-2000:])
            run = json.loads(next(line[7:] for line in proc.stdout.splitlines() if line.startswith("RESULT ")))
            rows.append((mode, export_s, size, run))
            print(f"[{mode}] {export_s:.1f} s {size:.0f} MB {run}", file=sys.stderr, flush=True)
    print(machine_line())
    h, w = default_image_hw(cfg)
    print(
        f"{args.config} ({n_params / 1e6:.0f}M parameters, float32), programs for {args.platforms}, "
        f"{args.frames} frames of {h}x{w}, symbolic frame count"
    )
    print("| weights | export (s) | folder (MB) | load in a fresh process (s) | first call (s) | call (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for mode, export_s, size, run in rows:
        timings = f"{run['load_s']:.2f} | {run['first_s']:.2f} | {run['call_s']:.3f}"
        print(f"| {mode} | {export_s:.1f} | {size:.0f} | {timings} |")


if __name__ == "__main__":
    main()
