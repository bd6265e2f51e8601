"""``python -m vggt_jax.evaluate``: how accurate is a reconstruction? Feed-forward and +BA side by side.

  python -m vggt_jax.evaluate model-free --seeds 0-9                    # perturbed ground truth -> BA (no model)
  python -m vggt_jax.evaluate output recon/ --gt colmap:path/to/scene    # an infer.py output (with --ba: +BA too)
  python -m vggt_jax.evaluate model --checkpoint ckpt/ --gt synthetic:1000-1015:2:72x96:turn:square --size 56

Ground truth specs: ``vggt_jax.evaluate.ground_truth`` (synthetic, colmap, co3d, re10k, tum; a synthetic seed
range ``A-B`` gives one scene per seed). Prints a table (mean over scenes) and, with ``--json``, writes every number.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

TABLE_KEYS = (
    "auc30",
    "rra30",
    "rta30",
    "rot_err_median",
    "trans_err_median",
    "ate",
    "focal_err_median",
    "depth_abs_rel",
    "depth_delta1.25",
    "accuracy",
    "completeness",
    "chamfer",
    "track_err_median_q0",
    "track_within4px_q0",
    "track_err_median_static_q0",
    "track_err_median_q1",
    "track_within4px_q1",
    "track_err_median_static_q1",
    "reproj_rmse_before",
    "reproj_rmse_after",
    "observations",
    "ba_run",
    "frames_held_out",
    "seconds",
)


def seed_list(text: str) -> list[int]:
    """``"0-9"`` or ``"0,3,5"`` (or a mix) -> the seeds."""
    seeds = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds.extend(range(int(lo), int(hi) + 1) if hi else [int(lo)])
    return seeds


def gt_specs(spec: str) -> list[str]:
    """A synthetic spec with a seed range expands to one spec per seed."""
    kind, _, rest = spec.partition(":")
    if kind != "synthetic" or "-" not in rest.split(":")[0]:
        return [spec]
    first, _, tail = rest.partition(":")
    return [f"synthetic:{seed}" + (f":{tail}" if tail else "") for seed in seed_list(first)]


def mean_columns(per_scene: list[dict[str, dict]]) -> dict[str, dict]:
    """Column-wise means over scenes (NaN where a scene lacks a metric)."""
    out = {}
    for column in per_scene[0]:
        keys = sorted({k for scene in per_scene for k in scene[column]})
        values = {
            k: [scene[column][k] for scene in per_scene if np.isfinite(scene[column].get(k, np.nan))] for k in keys
        }
        out[column] = {k: float(np.mean(v)) if v else float("nan") for k, v in values.items()}
    return out


def format_table(columns: dict[str, dict], keys=TABLE_KEYS) -> str:
    names = list(columns)
    lines = ["| metric | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    for key in keys:
        if any(key in columns[n] for n in names):
            cells = [f"{columns[n][key]:.4g}" if key in columns[n] else "-" for n in names]
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def model_free_table(rows: list[dict]) -> str:
    keys = ("rot_err_median", "trans_err_median", "auc30", "ate", "focal_err_median")
    lines = [
        "| seed | rotation err (deg) | translation-direction err (deg) | AUC@30 | ATE | focal err | reproj RMSE (px) | "
        "observations | outliers kept / planted | BA (s) |",
        "| ---: |" + " ---: |" * 9,
    ]
    for r in rows:
        b, a = r["before"], r["after"]
        cells = [f"{b[k]:.3g} -> {a[k]:.3g}" for k in keys]
        lines.append(
            f"| {r['seed']} | "
            + " | ".join(cells)
            + f" | {r['reproj_rmse_before']:.2f} -> {r['reproj_rmse_after']:.2f} | "
            f"{r['observations']} | {r['outliers_kept']} / {r['outliers_planted']} | {r['ba_seconds']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vggt_jax.evaluate", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    free = sub.add_parser("model-free", help="ground truth + known noise -> bundle adjustment, no model")
    free.add_argument("--seeds", default="0-9")
    free.add_argument("--frames", type=int, default=8)
    free.add_argument("--query_frames", type=int, default=4)
    free.add_argument("--frame_rule", default="pose", choices=["pose", "uniform"])
    output = sub.add_parser("output", help="an infer.py output folder (or predictions.npz) against ground truth")
    output.add_argument("path")
    output.add_argument("--gt", required=True)
    model = sub.add_parser("model", help="run a checkpoint on ground-truth scenes: feed-forward and +BA")
    model.add_argument("--checkpoint", required=True)
    model.add_argument("--config", default="vggt_1b", help="variant of a raw .safetensors/.pt checkpoint")
    model.add_argument("--gt", required=True, action="append")
    model.add_argument("--size", type=int, default=518, help="preprocessing target size (the model's resolution)")
    model.add_argument("--mode", default="crop", choices=["crop", "pad"])
    model.add_argument("--query_frames", type=int, default=4)
    model.add_argument("--max_query_points", type=int, default=1024)
    model.add_argument("--methods", default="reorder,rerun")
    for p in (free, model):
        p.add_argument("--camera_model", default="SIMPLE_PINHOLE")
        p.add_argument("--shared_camera", action="store_true")
        p.add_argument("--max_reproj_error", type=float, default=8.0, help="px of the original images")
        p.add_argument("--init_max_reproj_error", type=float, default=32.0, help="px, the gate on the initial cameras")
        p.add_argument("--min_frame_inliers", type=int, default=64)
    for p in (free, output, model):
        p.add_argument("--json", default=None, help="write every number here")
    args = parser.parse_args(argv)

    from vggt_jax.evaluate.ground_truth import load_ground_truth
    from vggt_jax.evaluate.harness import evaluate_model, evaluate_output, model_free_rows
    from vggt_jax.reconstruct.bundle import BAOptions

    if args.command != "output":
        ba = BAOptions(
            camera_model=args.camera_model,
            shared_camera=args.shared_camera,
            max_reproj_error=args.max_reproj_error,
            init_max_reproj_error=args.init_max_reproj_error,
            min_frame_inliers=args.min_frame_inliers,
        )
    try:
        if args.command == "model-free":
            rows = model_free_rows(
                seed_list(args.seeds),
                ba=ba,
                num_frames=args.frames,
                query_frames=args.query_frames,
                frame_rule=args.frame_rule,
            )
            print(model_free_table(rows))
            result = {"rows": rows}
        elif args.command == "output":
            columns = evaluate_output(args.path, load_ground_truth(args.gt))
            print(format_table(columns))
            result = {"columns": columns}
        else:
            from vggt_jax.inference.predictor import Predictor
            from vggt_jax.reconstruct.pipeline import TrackOptions

            predictor = Predictor.from_checkpoint(args.checkpoint, config=args.config)
            opts = TrackOptions(query_frames=args.query_frames, max_query_points=args.max_query_points)
            specs = [s for spec in args.gt for s in gt_specs(spec)]
            per_scene = [
                evaluate_model(
                    predictor,
                    load_ground_truth(spec),
                    target_size=args.size,
                    mode=args.mode,
                    track_options=opts,
                    ba=ba,
                    methods=tuple(args.methods.split(",")),
                )
                for spec in specs
            ]
            columns = mean_columns(per_scene)
            print(f"{len(specs)} scenes, mean over scenes")
            print(format_table(columns))
            result = {"columns": columns, "per_scene": dict(zip(specs, per_scene, strict=True))}
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
