"""Ground truth for the accuracy harness, from a one-line spec:

* ``synthetic:SEED[:FRAMES[:HxW[:TRAJECTORY[:square]]]]``: a ``vggt_jax.data.synthetic`` scene (exact cameras, depth,
  points, tracks), e.g. ``synthetic:3:8:294x392:orbit``; defaults 8 frames, 294x392, any trajectory; ``square``
  keeps each frame's central square, as the training pipeline crops;
* ``colmap:FOLDER``: a COLMAP scene folder (``vggt_jax.data.readers.colmap``; depth from ``stereo/depth_maps``);
* ``co3d:ROOT/CATEGORY/SEQUENCE``: a CO3Dv2 sequence (``vggt_jax.data.readers.co3d``);
* ``re10k:CAMERA_FILE``: a RealEstate10K sequence (``vggt_jax.data.readers.realestate10k``; cameras only);
* ``tum:FILE``: a TUM trajectory (cameras only, no images).

Cameras are in each dataset's world and pixels of the original images; the metrics do not depend on the world frame.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vggt_jax.geometry import depth_to_world_points


@dataclasses.dataclass
class GroundTruth:
    """``extrinsics [S, 3, 4]`` camera-from-world, ``intrinsics [S, 3, 3]`` (original pixels, this project's grid),
    ``sizes [S, 2]`` (H, W), ``names``; ``images`` (``[S, H, W, 3]`` uint8, or None where only ``image_paths`` are
    known), ``depth [S, H, W]`` with 0 = unknown (or None)."""

    name: str
    names: list[str]
    extrinsics: np.ndarray
    intrinsics: np.ndarray | None
    sizes: np.ndarray | None
    images: np.ndarray | None = None
    image_paths: list[str] | None = None
    depth: np.ndarray | None = None
    # (frame, xy [N, 2] original pixels) -> (tracks [S, N, 2], visible [S, N]) where the truth is known (synthetic)
    track_fn: Callable[[int, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None

    def points(self, max_points: int = 200_000, seed: int = 0) -> np.ndarray | None:
        """``[N, 3]`` world points of the valid depth pixels (a uniform subset of at most ``max_points``)."""
        if self.depth is None:
            return None
        pts = depth_to_world_points(self.depth.astype(np.float64), self.extrinsics, self.intrinsics)[self.depth > 0]
        if len(pts) > max_points:
            pts = pts[np.random.default_rng(seed).choice(len(pts), max_points, replace=False)]
        return pts

    def metric_inputs(self) -> dict:
        out = dict(extrinsics=self.extrinsics)
        if self.intrinsics is not None:
            out["intrinsics"] = self.intrinsics
        if self.depth is not None:
            out["points"] = self.points()
        return out


def _from_scene_record(record, with_depth: bool = True) -> GroundTruth:
    from vggt_jax.data.sources import FileSceneSource

    source = FileSceneSource([record])
    frames = [source.load_frame(0, i) for i in range(len(record.frames))]
    has_depth = with_depth and all(f["has_depth"] for f in frames)
    return GroundTruth(
        record.name,
        [f["name"] for f in frames],
        np.stack([f["extrinsic"] for f in frames]),
        np.stack([f["intrinsic"] for f in frames]),
        np.array([f["image"].shape[:2] for f in frames]),
        images=np.stack([f["image"] for f in frames]) if len({f["image"].shape for f in frames}) == 1 else None,
        image_paths=[r.image_path for r in record.frames],
        depth=np.stack([f["depth"] for f in frames]) if has_depth else None,
    )


def synthetic(
    seed: int, frames: int = 8, height: int = 294, width: int = 392, trajectory: str | None = None, square: bool = False
) -> GroundTruth:
    """A synthetic scene; ``square`` keeps the central ``height x height`` of each frame (as the training
    pipeline's square crops do), with the principal point moved accordingly."""
    from vggt_jax.data.synthetic import SyntheticScene

    scene = SyntheticScene(seed, frames, height, width, trajectory=trajectory)
    views = scene.render()
    x0 = (width - height) // 2 if square and width > height else 0
    side = height if x0 else width
    intrinsics = views["intrinsics"].copy()
    intrinsics[:, 0, 2] -= x0
    shift = np.array([x0, 0.0])

    def track_fn(frame, xy):
        tracks, visible = scene.tracks(scene.points_at(frame, np.asarray(xy, np.float64) + shift)[0])
        inside = (tracks[..., 0] >= x0 - 0.5) & (tracks[..., 0] <= x0 + side - 0.5)
        return tracks - shift, visible & inside

    crop = slice(x0, x0 + side)
    return GroundTruth(
        f"synthetic_{seed}_{scene.trajectory}",
        [f"frame_{i:02d}.png" for i in range(frames)],
        views["extrinsics"],
        intrinsics,
        np.tile((height, side), (frames, 1)),
        images=np.round(views["images"][:, :, crop] * 255).astype(np.uint8),
        depth=views["depths"][:, :, crop],
        track_fn=track_fn,
    )


def load_ground_truth(spec: str) -> GroundTruth:
    """The ground truth a spec names (module docstring); raises ValueError for a spec of no known kind."""
    kind, _, rest = spec.partition(":")
    if kind == "synthetic":
        parts = rest.split(":")
        if not parts[0]:
            raise ValueError("synthetic ground truth needs a seed: synthetic:SEED[:FRAMES[:HxW[:TRAJECTORY]]]")
        seed = int(parts[0])
        frames = int(parts[1]) if len(parts) > 1 else 8
        height, width = (int(v) for v in parts[2].split("x")) if len(parts) > 2 else (294, 392)
        trajectory = parts[3] if len(parts) > 3 and parts[3] else None
        return synthetic(seed, frames, height, width, trajectory, square=len(parts) > 4 and parts[4] == "square")
    if kind == "colmap":
        from vggt_jax.data.readers.colmap import load_colmap_scene

        return _from_scene_record(load_colmap_scene(rest))
    if kind == "co3d":
        from vggt_jax.data.readers.co3d import load_co3d

        path = Path(rest)
        scenes = load_co3d(path.parent.parent, categories=[path.parent.name], sequences=[path.name])
        if not scenes:
            raise ValueError(f"no CO3D sequence {path.name} in category {path.parent.name} under {path.parent.parent}")
        return _from_scene_record(scenes[0])
    if kind == "re10k":
        from vggt_jax.data.readers.realestate10k import load_realestate10k

        return _from_scene_record(load_realestate10k(rest), with_depth=False)
    if kind == "tum":
        from vggt_jax.inference.exports import read_tum

        stamps, extrinsics = read_tum(rest)
        names = [f"{t:.6f}" for t in stamps]
        return GroundTruth(Path(rest).stem, names, extrinsics, None, None)
    raise ValueError(
        f"unknown ground truth {spec!r}: use synthetic:SEED, colmap:DIR, co3d:ROOT/CAT/SEQ, re10k:FILE or tum:FILE"
    )
