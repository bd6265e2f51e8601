"""python -m vggt_jax.export CHECKPOINT --out DIR: the Predictor's forward as a serialized StableHLO model.

    python -m vggt_jax.export checkpoints/vggt_1b --out exported/vggt_1b                  # cpu, cuda, tpu; any S
    python -m vggt_jax.export facebook/VGGT-1B --out exported/ --platforms cuda --frames 1,8,32 --image-size 294x518

CHECKPOINT is what infer.py's --checkpoint takes (an orbax folder, a model.safetensors/.pt, a Hub id). The folder
holds manifest.json, weights.safetensors and one .jaxexport per platform (per frame bucket with --frames N,...);
``vggt_jax.export.load(DIR)`` runs it without the model code, ``infer.py --exported DIR`` runs the whole job.
"""

from __future__ import annotations

import argparse
import sys
import time

from vggt_jax.export.lowering import PLATFORMS


def parse(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--out", required=True)
    ap.add_argument("--platforms", default=",".join(PLATFORMS), help="comma-separated, from cpu, cuda, tpu")
    ap.add_argument("--dtype", default=None, help="compute dtype (default: float32 on cpu, bfloat16 elsewhere)")
    ap.add_argument("--image-size", default=None, help="HxW (default: the 4:3 size of the checkpoint's resolution)")
    ap.add_argument("--frames", default="symbolic", help="'symbolic' (any frame count) or buckets, e.g. 1,2,4,8")
    ap.add_argument("--weights", default="argument", choices=("argument", "baked"))
    ap.add_argument("--overwrite", action="store_true")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    try:
        image_hw = None
        if args.image_size:
            try:
                image_hw = tuple(int(x) for x in args.image_size.lower().split("x"))
                assert len(image_hw) == 2
            except (ValueError, AssertionError):
                raise ValueError(f"--image-size {args.image_size}: write it as HxW, e.g. 392x518") from None
        frames = None
        if args.frames != "symbolic":
            try:
                frames = [int(x) for x in args.frames.split(",")]
            except ValueError:
                raise ValueError(f"--frames {args.frames}: 'symbolic' or comma-separated counts, e.g. 1,2,4") from None
        from vggt_jax.convert.checkpoint import load_checkpoint
        from vggt_jax.export.build import export_model
        from vggt_jax.inference.predictor import resolve_checkpoint

        t = time.perf_counter()
        config, params = load_checkpoint(resolve_checkpoint(args.checkpoint), dtype="float32")
        out = export_model(
            config,
            params,
            args.out,
            platforms=args.platforms.split(","),
            dtype=args.dtype,
            image_hw=image_hw,
            frames=frames,
            weights=args.weights,
            overwrite=args.overwrite,
        )
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    print(
        f"wrote {out} ({size:.1f} MB, {time.perf_counter() - t:.1f} s): "
        + ", ".join(sorted(f.name for f in out.iterdir()))
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
