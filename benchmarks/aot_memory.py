"""Will a training config fit? Compile the train step ahead of time for a virtual mesh and print per-device memory.

    python benchmarks/aot_memory.py                                   # the official 1B fine-tuning recipe, 8 devices
    python benchmarks/aot_memory.py --devices 8 --frames 24 --size 518 --scenes_per_device 2 \\
        --config configs/train_vggt_1b.py:freeze=False,remat=full --mesh 1,8,1

Nothing is allocated: the state and the batch are ShapeDtypeStructs with their shardings, and ``jit(...).lower(...)
.compile()`` runs XLA's partitioner and scheduler for the mesh. The virtual devices are this machine's CPU backend
split into ``--devices`` fake devices, so the numbers are XLA:CPU's buffer assignment: the sharded parameters,
optimiser state and batch are exact; activation (temp) memory depends on the backend's fusion and scheduling and is
an estimate for GPU/TPU, typically within tens of percent. Prints one markdown row per config.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", action="append", help="config file[:arg] (repeat for several rows)")
    p.add_argument("--devices", type=int, default=8)
    p.add_argument("--mesh", default="1,-1,1", help="data,fsdp,tensor sizes (one may be -1)")
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--size", type=int, default=518, help="image width; height = width * --aspect")
    p.add_argument("--aspect", type=float, default=1.0)
    p.add_argument("--scenes_per_device", type=int, default=2, help="48 images per device = 2 scenes of 24")
    p.add_argument("--set", action="append", default=[], help="config overrides key=value (python literal)")
    return p.parse_args()


def main() -> None:
    args = parse()
    flag = f"--xla_force_host_platform_device_count={args.devices}"
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    sys.path.insert(0, str(REPO))

    import ast
    import importlib.util

    import jax
    import numpy as np

    from vggt_jax.train import sharding as sh
    from vggt_jax.train.trainer import Trainer

    def load(spec: str):
        path, _, arg = spec.partition(":")
        module_spec = importlib.util.spec_from_file_location("experiment", REPO / path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        config = module.get_config(arg or None)
        for item in args.set:
            key, _, value = item.partition("=")
            *parents, last = key.split(".")
            target = config
            for name in parents:
                target = target[name]
            target[last] = ast.literal_eval(value)
        return config

    specs = args.config or ["configs/train_vggt_1b.py", "configs/train_vggt_1b.py:freeze=False,remat=full"]
    mesh = sh.make_mesh(*(int(x) for x in args.mesh.split(",")))
    dp = sh.data_parallel_size(mesh)
    b, s = args.scenes_per_device * dp, args.frames
    h = int(round(args.size * args.aspect / 14)) * 14
    w = args.size
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import machine_line

    print(machine_line() + " (the compile runs here; the memory is XLA's plan for the virtual mesh)")
    print(f"mesh {dict(mesh.shape)} ({jax.devices()[0].platform}), batch {b} scenes x {s} frames x {h}x{w}")
    print(
        "| config | params (M) | trainable (M) | params + opt state / device | batch / device | "
        "activations (temp) / device | peak / device | compile (s) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    gib = 2.0**30
    for spec in specs:
        config = load(spec)
        trainer = Trainer.create(config, mesh)
        n_tracks = config.data.num_tracks
        shapes = {
            "images": ((b, s, h, w, 3), np.float32),
            "extrinsics": ((b, s, 3, 4), np.float32),
            "intrinsics": ((b, s, 3, 3), np.float32),
            "depths": ((b, s, h, w), np.float32),
            "world_points": ((b, s, h, w, 3), np.float32),
            "point_masks": ((b, s, h, w), np.bool_),
            "frame_mask": ((b, s), np.bool_),
        }
        if trainer.model.config.track_head is not None:
            shapes.update(tracks=((b, s, n_tracks, 2), np.float32), track_vis=((b, s, n_tracks), np.bool_))
        batch = {
            k: jax.ShapeDtypeStruct(shape, dtype, sharding=sh.batch_sharding(mesh, len(shape)))
            for k, (shape, dtype) in shapes.items()
        }
        t0 = time.perf_counter()
        with jax.set_mesh(mesh), sh.logical_axis_rules():
            compiled = trainer.train_step_jit(batch).lower(trainer.abstract_state, batch).compile()
        seconds = time.perf_counter() - t0
        mem = compiled.memory_analysis()
        state_bytes = sum(
            int(np.prod(x.sharding.shard_shape(x.shape))) * np.dtype(x.dtype).itemsize
            for x in jax.tree.leaves(trainer.abstract_state)
        )
        batch_bytes = sum(
            int(np.prod(x.sharding.shard_shape(x.shape))) * np.dtype(x.dtype).itemsize for x in batch.values()
        )
        peak = mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes - mem.alias_size_in_bytes
        params = sum(x.size for x in jax.tree.leaves(trainer.abstract_params))
        trainable = sum(
            x.size
            for x, lbl in zip(
                jax.tree.leaves(trainer.abstract_params), jax.tree.leaves(trainer.opt_info["labels"]), strict=True
            )
            if lbl == "train"
        )
        name = f"{spec} (dtype {config.model.dtype}, remat {config.model.remat})"
        print(
            f"| {name} | {params / 1e6:.0f} | {trainable / 1e6:.0f} | {state_bytes / gib:.2f} GiB | "
            f"{batch_bytes / gib:.2f} GiB | {mem.temp_size_in_bytes / gib:.2f} GiB | {peak / gib:.2f} GiB | "
            f"{seconds:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
