"""What the batch job writes per scene, and the scene's index row.

``--outputs`` (default ``cameras,depth,confidence``):

  cameras      cameras.npz: extrinsic [S, 3, 4], intrinsic [S, 3, 3] (model input), intrinsic_original, pose_enc,
               image_names, original_hw, scale_xy, offset_xy (predictions.npz's keys, so its readers read it)
  depth        depth.npy [S, H, W] float32, camera z in the model input's pixels (memory-mappable)
  confidence   depth_conf.npy [S, H, W] float32
  npz          predictions.npz, infer.py's (every output)
  points       points.ply, infer.py's (the confident depth points, coloured)
  colmap       sparse/0 and sparse_txt/0, infer.py's COLMAP model (images named as in the index)
  trajectory   trajectory_tum.txt, trajectory_kitti.txt, infer.py's
  images       images/<name>.png: the model input (8-bit, exact), what depth and ``intrinsic`` are in; with depth
               and cameras, the scene is a training source (``vggt_jax.data.readers``, layout "batch")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vggt_jax.inference import exports
from vggt_jax.staging import staged_directory

OUTPUTS = ("cameras", "depth", "confidence", "npz", "points", "colmap", "trajectory", "images")
CAMERA_KEYS = ("extrinsic", "intrinsic", "intrinsic_original", "pose_enc")


def check_outputs(outputs: Sequence[str]) -> None:
    unknown = sorted(set(outputs) - set(OUTPUTS))
    if unknown or not outputs:
        raise ValueError(f"--outputs {','.join(outputs)}: choose from {','.join(OUTPUTS)}")


def failed_row(scene, order: int, error: str) -> dict:
    return dict(id=scene.id, order=order, status="failed", error=error, images=scene.images)


def image_stems(names: Sequence[str]) -> list[str]:
    """The file stems of the frames' names (unique; a repeated stem gets its position appended)."""
    stems = [Path(n).stem for n in names]
    return [s if stems.count(s) == 1 else f"{s}_{k:04d}" for k, s in enumerate(stems)]


def _png(image: np.ndarray):
    """A model-input frame [3, H, W] in [0, 1] as 8-bit PNG (the preprocessing made it from 8-bit: exact)."""
    from PIL import Image

    pixels = np.clip(np.round(np.moveaxis(image, 0, -1) * 255), 0, 255).astype(np.uint8)
    return lambda f: Image.fromarray(pixels).save(f, format="PNG")


def _npy(array: np.ndarray):
    return lambda f: np.save(f, np.ascontiguousarray(array, np.float32))


def write_scene(scenes_dir: Path, out: Path, item, pred, outputs: Sequence[str]) -> dict:
    """Write ``pred`` of the scene ``item`` (``batch.Loaded``) into ``scenes_dir/ID`` through a temporary folder;
    returns its index row. Degenerate cameras (a trained model does not predict them) fail the scene."""
    cameras_ok = np.isfinite(pred.extrinsic).all() and np.isfinite(pred.intrinsic_original).all()
    if not cameras_ok:
        raise ValueError("the model predicted degenerate cameras (non-finite); is the checkpoint trained?")
    scene, metas = item.scene, item.metas
    names = [m.name for m in metas]
    final = scenes_dir / scene.id
    files: dict[str, str] = {}
    with staged_directory(final) as tmp:
        bookkeeping = dict(
            image_names=np.array(names),
            original_hw=np.array([m.original_hw for m in metas]),
            scale_xy=np.array([m.scale_xy for m in metas]),
            offset_xy=np.array([m.offset_xy for m in metas]),
        )
        if "cameras" in outputs:
            arrays = {k: getattr(pred, k) for k in CAMERA_KEYS}
            exports.write_predictions(tmp, {**arrays, **bookkeeping}, filename="cameras.npz")
            files["cameras"] = "cameras.npz"
        dense = {}
        if "depth" in outputs:
            dense["depth.npy"] = _npy(pred.depth)
            files["depth"] = "depth.npy"
        if "confidence" in outputs:
            dense["depth_conf.npy"] = _npy(pred.depth_conf)
            files["confidence"] = "depth_conf.npy"
        if dense:
            exports.commit_files(tmp, dense)
        if "npz" in outputs:
            exports.write_predictions(tmp, {**pred.arrays(), **bookkeeping})
            files["npz"] = "predictions.npz"
        if "points" in outputs or "colmap" in outputs:
            points = exports.select_points(
                pred.world_points_from_depth,
                pred.depth_conf,
                pred.images,
                conf_percentile=50.0,
                mask=np.stack([m.content_mask() for m in metas]),
                max_points=2_000_000,
                seed=0,
            )
            if "points" in outputs:
                exports.write_ply(tmp, points)
                files["points"] = "points.ply"
            if "colmap" in outputs:
                from vggt_jax.jobs.infer import write_colmap_models

                write_colmap_models(tmp, points, pred)
                files["colmap"] = "sparse/0"
        if "images" in outputs:
            exports.commit_files(
                tmp, {f"images/{stem}.png": _png(pred.images[k]) for k, stem in enumerate(image_stems(names))}
            )
            files["images"] = "images"
        if "trajectory" in outputs:
            exports.write_trajectories(tmp, pred.extrinsic)
            files["trajectory"] = "trajectory_tum.txt"
    conf = np.asarray(pred.depth_conf, np.float64)
    return dict(
        id=scene.id,
        order=item.order,
        status="done",
        error=None,
        images=scene.images,
        frames=names,
        frame_indices=list(item.frame_indices),
        image_hw=list(pred.images.shape[-2:]),
        original_hw=[list(m.original_hw) for m in metas],
        intrinsics=np.asarray(pred.intrinsic_original, np.float64).tolist(),
        extrinsics=np.asarray(pred.extrinsic, np.float64).tolist(),
        outputs={k: f"scenes/{scene.id}/{v}" for k, v in files.items()},
        depth_conf={
            "mean": float(conf.mean()),
            "median": float(np.median(conf)),
            "p10": float(np.percentile(conf, 10)),
            "p90": float(np.percentile(conf, 90)),
        },
    )
