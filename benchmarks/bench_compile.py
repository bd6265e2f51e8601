"""Compile time of the forward pass in the unrolled and the scan block layouts (``AggregatorConfig.scan_layers``).

    python benchmarks/bench_compile.py --config vggt_1b --frames 2,8 --size 392x518

Each (layout, frames) runs in a fresh subprocess (no compilation cache, no warm tracing caches): abstract params
(``jax.eval_shape``, nothing allocated), ``jax.jit(model.apply).lower(params, images)`` (trace + lower) and
``.compile()`` (XLA), each timed by the wall clock, without track queries, on the default backend.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(REPO, "vggt_jax")) and REPO not in sys.path:
    sys.path.insert(0, REPO)


def measure(config_name: str, scan: bool, frames: int, height: int, width: int, dtype: str) -> dict:
    import jax
    import jax.numpy as jnp

    from vggt_jax.config import get_config
    from vggt_jax.model.layout import with_scan_layers
    from vggt_jax.model.vggt import VGGT

    jax.config.update("jax_enable_compilation_cache", False)  # time the compiler, not a cache hit
    config = with_scan_layers(get_config(config_name), scan).replace(dtype=dtype)
    model = VGGT(config)
    images = jax.ShapeDtypeStruct((1, frames, 3, height, width), jnp.float32)
    t0 = time.perf_counter()
    params = jax.eval_shape(model.init, jax.random.key(0), images)
    t1 = time.perf_counter()
    lowered = jax.jit(model.apply).lower(params, images)
    t2 = time.perf_counter()
    compiled = lowered.compile()
    t3 = time.perf_counter()
    return {
        "layout": "scan" if scan else "unrolled",
        "frames": frames,
        "eval_shape_s": t1 - t0,
        "lower_s": t2 - t1,
        "compile_s": t3 - t2,
        "temp_gb": compiled.memory_analysis().temp_size_in_bytes / 1024**3,
        "backend": jax.default_backend(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="vggt_1b")
    parser.add_argument("--frames", default="2,8", help="comma-separated frame counts")
    parser.add_argument("--size", default="392x518", help="HxW")
    parser.add_argument("--dtype", default="float32", help="compute dtype")
    parser.add_argument("--layouts", default="unrolled,scan")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: "layout,frames" measured in this process
    args = parser.parse_args(argv)
    height, width = (int(v) for v in args.size.split("x"))
    if args.one:
        layout, frames = args.one.split(",")
        print(json.dumps(measure(args.config, layout == "scan", int(frames), height, width, args.dtype)))
        return 0
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from machine import machine_line

    print(machine_line())
    print(f"{args.config}, {args.size}, {args.dtype}; seconds (wall clock), each row a fresh process")
    print(f"{'layout':>9} {'frames':>6} {'eval_shape':>10} {'lower':>7} {'compile':>8} {'xla temp GB':>11}  backend")
    for frames in (int(f) for f in args.frames.split(",")):
        for layout in args.layouts.split(","):
            cmd = [sys.executable, os.path.abspath(__file__), "--one", f"{layout},{frames}", "--config", args.config]
            cmd += ["--size", args.size, "--dtype", args.dtype]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(
                f"{r['layout']:>9} {r['frames']:>6} {r['eval_shape_s']:>10.1f} {r['lower_s']:>7.1f} "
                f"{r['compile_s']:>8.1f} {r['temp_gb']:>11.2f}  {r['backend']}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
