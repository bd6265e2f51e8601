"""The README's demo picture: input frames, predicted depth and ground-truth depth of an ``infer.py`` output, with
each frame's depth error (AbsRel after one median scale per scene, as the accuracy harness computes it).

    python infer.py --images examples/synthetic_room --checkpoint examples/demo_micro --out /tmp/recon
    python scripts/plot_demo.py /tmp/recon synthetic:3:6:294x392:turn docs/demo.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recon", type=Path, help="an infer.py --out folder")
    p.add_argument("gt", help="its ground truth, e.g. synthetic:3:6:294x392:turn")
    p.add_argument("out", type=Path)
    p.add_argument("--frames", default="0,5")
    args = p.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from vggt_jax.evaluate.ground_truth import load_ground_truth
    from vggt_jax.evaluate.harness import gt_depth_in_model_pixels
    from vggt_jax.inference.exports import load_predictions

    arrays = load_predictions(args.recon / "predictions.npz")
    gt = load_ground_truth(args.gt)
    depth = arrays["depth"].reshape(arrays["depth"].shape[:3])
    truth = gt_depth_in_model_pixels(gt.depth, arrays["scale_xy"], arrays["offset_xy"], depth.shape[1:])
    valid = truth > 0
    valid &= np.isfinite(depth) & (depth > 0)
    scale = np.median(truth[valid] / depth[valid])  # one median scale per scene, as the harness
    frames = [int(f) for f in args.frames.split(",")]
    preview = np.asarray(Image.open(args.recon / "preview.png").convert("RGB"))
    rows, cols = np.nonzero(preview.min(-1) < 250)  # crop the white margin
    preview = preview[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    fig = plt.figure(figsize=(12, 2.6 * len(frames)), dpi=90)
    grid = fig.add_gridspec(len(frames), 4)
    for row, f in enumerate(frames):
        lo, hi = np.percentile(truth[f][valid[f]], [2, 98])
        abs_rel = np.mean(np.abs(depth[f] * scale - truth[f])[valid[f]] / truth[f][valid[f]])
        panels = [
            (arrays["images"][f].transpose(1, 2, 0), f"input, frame {f}", None),
            (depth[f] * scale, f"predicted depth (AbsRel {abs_rel:.3f})", "turbo"),
            (np.where(valid[f], truth[f], np.nan), "ground-truth depth", "turbo"),
        ]
        for col, (image, title, cmap) in enumerate(panels):
            ax = fig.add_subplot(grid[row, col])
            ax.imshow(image, cmap=cmap, vmin=lo if cmap else None, vmax=hi if cmap else None)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    ax = fig.add_subplot(grid[:, 3])
    ax.imshow(preview)
    ax.set_title("points from predicted depth + cameras", fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
