"""Writers for VGGT predictions: each writes into a directory it is given, all-or-nothing per call.

Typical use (``p`` numpy predictions, ``metas`` from ``vggt_jax.inference.preprocess``)::

    points = select_points(p["world_points"], p["world_points_conf"], p["images"], mask=content_masks)
    write_ply(out, points); write_glb(out, points, extrinsic, intrinsic_original, original_hw)
    write_colmap(out / "sparse/0", points, extrinsic, intrinsic_original, original_hw, names,
                 pixels_xy=original_pixel_coords(metas))
    write_transforms_json(out, extrinsic, intrinsic_original, original_hw, [f"images/{n}" for n in names])

Optional dependencies: trimesh (scene.glb), matplotlib (previews); the rest needs numpy and Pillow only.
"""

from vggt_jax.inference.exports._common import (
    ExportError,
    PointSelection,
    commit_files,
    select_points,
    select_points_per_frame,
)
from vggt_jax.inference.exports.colmap import colmap_model_files, write_colmap
from vggt_jax.inference.exports.depth import encode_depth, read_depth_png, write_depth_maps
from vggt_jax.inference.exports.nerfstudio import transforms_dict, write_transforms_json
from vggt_jax.inference.exports.pointcloud import glb_bytes, ply_bytes, write_glb, write_ply
from vggt_jax.inference.exports.predictions import (
    PREDICTION_SHAPES,
    check_predictions,
    load_predictions,
    write_predictions,
)
from vggt_jax.inference.exports.preview import preview_bytes, write_preview
from vggt_jax.inference.exports.tracks import write_tracks
from vggt_jax.inference.exports.trajectory import TRAJECTORY_FILES, kitti_text, read_tum, tum_text, write_trajectories

__all__ = [
    "PREDICTION_SHAPES",
    "TRAJECTORY_FILES",
    "ExportError",
    "PointSelection",
    "check_predictions",
    "colmap_model_files",
    "commit_files",
    "encode_depth",
    "glb_bytes",
    "kitti_text",
    "load_predictions",
    "ply_bytes",
    "preview_bytes",
    "read_depth_png",
    "read_tum",
    "select_points",
    "select_points_per_frame",
    "transforms_dict",
    "tum_text",
    "write_colmap",
    "write_depth_maps",
    "write_glb",
    "write_ply",
    "write_predictions",
    "write_preview",
    "write_tracks",
    "write_trajectories",
    "write_transforms_json",
]
