"""Render a synthetic ground-truth scene to a folder of JPEGs, as ``examples/synthetic_room`` was made:

    python scripts/render_example.py synthetic:7:6:294x392:turn examples/synthetic_room

The spec is the accuracy harness's (``vggt_jax.evaluate.ground_truth``), so
``python -m vggt_jax.evaluate output RECON --gt SPEC`` scores a reconstruction of the folder against the same scene.
"""

import argparse
from pathlib import Path

from PIL import Image

from vggt_jax.evaluate.ground_truth import load_ground_truth


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", help="synthetic:SEED[:FRAMES[:HxW[:TRAJECTORY]]]")
    parser.add_argument("out", type=Path)
    parser.add_argument("--quality", type=int, default=95)
    args = parser.parse_args(argv)
    if not args.spec.startswith("synthetic:"):
        parser.error(f"{args.spec!r} is not a synthetic spec (synthetic:SEED[:FRAMES[:HxW[:TRAJECTORY]]])")
    gt = load_ground_truth(args.spec)
    args.out.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(gt.images):
        Image.fromarray(image).save(args.out / f"frame_{i:02d}.jpg", quality=args.quality)
    print(f"{gt.name}: {len(gt.images)} frames of {gt.images.shape[1]}x{gt.images.shape[2]} in {args.out}")


if __name__ == "__main__":
    main()
