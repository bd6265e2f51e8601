"""python -m vggt_jax.batch: reconstruct a dataset of scenes (``vggt_jax.jobs.batch``).

    python -m vggt_jax.batch --scenes scenes.jsonl --checkpoint checkpoints/vggt_1b --out recon/ --frames 16
    python -m vggt_jax.batch --scenes /data/clips/ --hub facebook/VGGT-1B --out recon/ --outputs cameras,depth,npz

On several hosts, one process each: ``--coordinator HOST:PORT --num_processes N --process_id I`` (or JAX's
JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID, or ``--distributed_auto`` on a TPU pod or SLURM).
Run the same command again after a preemption: finished scenes are skipped. Outputs, the index and resuming:
docs/batch.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from vggt_jax.jobs.batch import BatchOptions

HELP = {
    "scenes": "a manifest (JSON lines: id, images, optional frames / fps) or a root folder of scene folders",
    "out": "output folder: scenes/<id>/ and index/",
    "checkpoint": "orbax checkpoint dir, an official model.safetensors / model.pt, or a Hub id",
    "config": "variant of a raw .safetensors/.pt checkpoint (default: told from its keys)",
    "frames": "frames per scene, uniform over the clip",
    "stride": "keep every k-th image before the frame limit",
    "min_frames": "a scene with fewer readable frames fails",
    "outputs": "comma-separated, from cameras,depth,confidence,npz,points,colmap,trajectory",
    "scenes_per_device": "scenes per device in one forward",
    "mode": "preprocessing mode (VGGT crop/pad, Omega balanced/max_size; default the family's)",
    "image_resolution": "preprocessing size (default the checkpoint's)",
    "dtype": "compute dtype (default float32 on CPU, bfloat16 on accelerators)",
    "workers": "decoding / preprocessing threads",
    "prefetch": "scenes decoded ahead of the forward",
    "writers": "output-writing threads",
    "quiet": "no progress bar",
}


def parser() -> argparse.ArgumentParser:
    """Every ``BatchOptions`` field as a flag, with its default (one record, one set of defaults)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for field in dataclasses.fields(BatchOptions):
        flag = f"--{field.name}"
        default = field.default
        if field.name == "checkpoint":
            ap.add_argument(flag, default=None, help=HELP[field.name])
        elif isinstance(default, bool):
            ap.add_argument(flag, action="store_true", help=HELP[field.name])
        elif isinstance(default, tuple):
            ap.add_argument(flag, default=",".join(default), help=f"{HELP[field.name]} (default %(default)s)")
        elif default is dataclasses.MISSING:
            ap.add_argument(flag, required=True, help=HELP[field.name])
        else:
            kind = int if isinstance(default, int) or field.name in ("stride", "image_resolution") else str
            ap.add_argument(flag, type=kind, default=default, help=f"{HELP[field.name]} (default %(default)s)")
    ap.add_argument("--hub", default=None, help="Hugging Face Hub id instead of --checkpoint, e.g. facebook/VGGT-1B")
    ap.add_argument("--coordinator", default=None, help="HOST:PORT of process 0 (jax.distributed)")
    ap.add_argument("--num_processes", type=int, default=None)
    ap.add_argument("--process_id", type=int, default=None)
    ap.add_argument("--distributed_auto", action="store_true", help="let JAX find the cluster (TPU pod, SLURM)")
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if (args.checkpoint is None) == (args.hub is None):
        print("error: give exactly one of --checkpoint or --hub", file=sys.stderr)
        return 2
    import jax

    address = args.coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS")
    if address:
        num = args.num_processes or int(os.environ.get("JAX_NUM_PROCESSES", "0"))
        pid = args.process_id if args.process_id is not None else int(os.environ.get("JAX_PROCESS_ID", "-1"))
        if num <= 0 or pid < 0:
            print("error: --coordinator needs --num_processes and --process_id (or JAX_* variables)", file=sys.stderr)
            return 2
        # initialization_timeout: a coordinator that never answers fails the process instead of hanging it.
        jax.distributed.initialize(address, num_processes=num, process_id=pid, initialization_timeout=300)
    elif args.distributed_auto:
        jax.distributed.initialize()
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(BatchOptions)}
    values["checkpoint"] = args.checkpoint or args.hub
    values["outputs"] = tuple(x for x in values["outputs"].split(",") if x)
    from vggt_jax.convert import ConversionError
    from vggt_jax.jobs.scenes import ManifestError

    try:
        summary = run(BatchOptions(**values))
    except (ValueError, FileNotFoundError, ManifestError, ConversionError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0 if summary is not None else 1


def run(opts: BatchOptions):
    from vggt_jax.jobs.batch import run_batch

    return run_batch(opts)


if __name__ == "__main__":
    sys.exit(main())
