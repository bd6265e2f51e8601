"""Bundle adjustment of tracked points with pycolmap: cameras and points refined against multi-view observations.

The problem (``bundle_adjust``): ``P`` points, each with an initial 3D position (VGGT: the predicted depth
unprojected at its query pixel) and a track through ``S`` frames (positions and visibility scores); cameras
initialised from the feed-forward prediction, in ORIGINAL-image pixels on this project's pixel grid (centres at
integers; COLMAP's +0.5 is applied when the model is built, ``vggt_jax.geometry.colmap_io``).

1. Observations: the track positions with visibility >= ``vis_threshold`` inside the image, plus each point's query
   pixel; then only those that reproject within the initial gate of the initial solution: ``init_max_reproj_error``
   px or ``init_gate_frac`` of the image's diagonal, whichever is larger.
2. A frame with fewer than ``min_frame_inliers`` of them (upstream's demo skips BA for the whole scene then) is
   kept out of the adjustment at its initial pose, without its observations; so is a frame that ends the rounds
   below that number (the adjustment is then redone without it). One warning line names them; the run never
   aborts for it. With fewer than two frames left, no adjustment runs and every camera stays the initial one.
3. Rounds of ``pycolmap`` bundle adjustment (robust Cauchy loss), each followed by dropping the observations that
   reproject further than ``max_reproj_error`` and the points left with fewer than ``min_track_length``
   observations; after the last, also those beyond ``inlier_sigmas`` times the noise level the residuals show (if
   that is tighter). The last filter is the model's: every observation it holds is within ``max_reproj_error``.

The gauge: frame 0's pose is held constant when it takes part, and COLMAP fixes one translation coordinate of
another frame, so the result stays in camera 0's frame at the initial scale.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import pycolmap

from vggt_jax.geometry import colmap_io

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class BAOptions:
    """Settings of ``bundle_adjust`` (module docstring); pixel values are in original-image pixels."""

    vis_threshold: float = 0.2  # upstream's demo
    max_reproj_error: float = 8.0  # upstream's demo
    # The first gate is against the feed-forward solution, whose cameras can be off by a few degrees: at 2 degrees and
    # a 60 degree field of view an inlier lands ~10-20 px from its track.
    init_max_reproj_error: float = 32.0
    # The same error in pixels grows with the image: 2 degrees are ~14 px at 518 px and ~110 px in a 4000-px photo
    # (BA runs in original pixels), so the gate is also a fraction of the diagonal (32 px up to 267 px of diagonal;
    # 78 px at 518x392). At 32 px a 518-px model-free case lost its last frame (median 57 px off).
    init_gate_frac: float = 0.12
    camera_model: str = "SIMPLE_PINHOLE"
    shared_camera: bool = False
    min_frame_inliers: int = 64  # upstream's demo skips BA below this (we hold the frame out instead)
    # A point seen twice is consistent with any wrong second observation near its epipolar line, which no
    # reprojection error can tell; with three or more frames a point needs three (two frames: two).
    min_track_length: int = 3
    rounds: int = 3
    # After the last round, observations further than this many noise sigmas (but at least 1 px) are dropped too,
    # when that is tighter than max_reproj_error: the sigma comes from the residuals (their median / 1.177, a 2D
    # Gaussian's; 3 sigmas keep 98.9% of Gaussian inliers). Only after the last round: filtering by it between
    # rounds drops the residual tails selectively and biased the focal length 10x (0.03% -> 0.33%, seed 1 from
    # the true cameras). None turns it off.
    inlier_sigmas: float | None = 3.0
    loss_scale: float = 2.0  # px: Cauchy loss, so the outliers a gate lets through pull little
    refine_focal_length: bool = True
    refine_principal_point: bool = False
    max_iterations: int = 100

    def __post_init__(self):
        if self.camera_model not in colmap_io.PINHOLE_MODELS:
            raise ValueError(
                f"camera_model must be one of {', '.join(colmap_io.PINHOLE_MODELS)}, got {self.camera_model!r}"
            )
        if not 0 < self.max_reproj_error <= self.init_max_reproj_error:
            raise ValueError("need 0 < max_reproj_error <= init_max_reproj_error")
        if self.init_gate_frac < 0:
            raise ValueError("init_gate_frac must be >= 0")
        if self.rounds < 1:
            raise ValueError("rounds must be >= 1")


DEFAULT_OPTIONS = BAOptions()


@dataclasses.dataclass
class Tracks:
    """``P`` tracked points through ``S`` frames.

    Attributes:
      xy: ``[S, P, 2]`` positions in each frame's original pixels (this project's grid).
      vis: ``[S, P]`` visibility scores in [0, 1].
      query_frame: ``[P]`` int, the frame each point was queried in (its position there is the query pixel).
      xyz: ``[P, 3]`` initial world points.
      rgb: ``[P, 3]`` uint8 colours.
    """

    xy: np.ndarray
    vis: np.ndarray
    query_frame: np.ndarray
    xyz: np.ndarray
    rgb: np.ndarray

    def __post_init__(self):
        s, p = np.shape(self.vis)
        shapes = dict(xy=(s, p, 2), query_frame=(p,), xyz=(p, 3), rgb=(p, 3))
        for name, shape in shapes.items():
            if np.shape(getattr(self, name)) != shape:
                raise ValueError(
                    f"Tracks.{name} must have shape {list(shape)}, got {list(np.shape(getattr(self, name)))}"
                )

    def select(self, points: np.ndarray) -> Tracks:
        """The tracks of ``points`` (indices or a bool mask over the P points)."""
        return Tracks(
            self.xy[:, points], self.vis[:, points], self.query_frame[points], self.xyz[points], self.rgb[points]
        )

    @classmethod
    def concatenate(cls, parts: list[Tracks]) -> Tracks:
        return cls(
            np.concatenate([t.xy for t in parts], 1),
            np.concatenate([t.vis for t in parts], 1),
            np.concatenate([t.query_frame for t in parts]),
            np.concatenate([t.xyz for t in parts]),
            np.concatenate([t.rgb for t in parts]),
        )


@dataclasses.dataclass
class BAResult:
    """What ``bundle_adjust`` returns.

    Attributes:
      reconstruction: the adjusted ``pycolmap.Reconstruction`` (images ``1..S`` named as given, points with multi-view
        tracks, errors filled in).
      extrinsics, intrinsics: ``[S, 3, 4]``, ``[S, 3, 3]`` adjusted cameras (original pixels, this project's grid);
        radial: ``[S]`` the SIMPLE_RADIAL coefficient (0 for the other models).
      xyz, rgb: ``[Q, 3]`` the points kept; point_index: ``[Q]`` their index in the input ``Tracks``;
        observed: ``[S, Q]`` bool, where each is observed.
      report: a JSON-ready summary: inliers per frame, frames held out, reprojection RMSE (px) of the final
        observations before and after, counts and seconds.
    """

    reconstruction: pycolmap.Reconstruction
    extrinsics: np.ndarray
    intrinsics: np.ndarray
    radial: np.ndarray
    xyz: np.ndarray
    rgb: np.ndarray
    point_index: np.ndarray
    observed: np.ndarray
    report: dict


@dataclasses.dataclass
class _State:
    extrinsics: np.ndarray  # [S, 3, 4]
    intrinsics: np.ndarray  # [S, 3, 3]
    radial: np.ndarray  # [S]
    xyz: np.ndarray  # [P, 3]


def reprojection_errors(state: _State, xy: np.ndarray) -> np.ndarray:
    """``[S, P]`` pixel distance between each point's projection and ``xy [S, P, 2]`` (inf behind the camera)."""
    cam = np.einsum("sij,pj->spi", state.extrinsics[:, :, :3], state.xyz) + state.extrinsics[:, None, :, 3]
    z = cam[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        normalised = cam[..., :2] / z[..., None]
    r2 = np.sum(normalised**2, -1, keepdims=True)
    distorted = normalised * (1 + state.radial[:, None, None] * r2)
    focal = np.stack([state.intrinsics[:, 0, 0], state.intrinsics[:, 1, 1]], -1)[:, None]
    centre = state.intrinsics[:, None, :2, 2]
    err = np.linalg.norm(distorted * focal + centre - xy, axis=-1)
    return np.where((z > 1e-9) & np.isfinite(err), err, np.inf)


def _threshold(residuals: np.ndarray, opts: BAOptions, last: bool) -> float:
    """The inlier threshold after a round: ``max_reproj_error``; after the last, ``inlier_sigmas`` noise sigmas
    (at least 1 px) if tighter."""
    if not last or opts.inlier_sigmas is None or len(residuals) == 0:
        return opts.max_reproj_error
    sigma = float(np.median(residuals)) / np.sqrt(2 * np.log(2))  # Rayleigh median = 1.177 sigma
    return min(opts.max_reproj_error, max(opts.inlier_sigmas * sigma, 1.0))


def _rmse(errors: np.ndarray, mask: np.ndarray) -> float:
    return float(np.sqrt(np.mean(errors[mask] ** 2))) if mask.any() else float("nan")


def _build(state, xy, mask, sizes, names, opts, rgb=None) -> tuple[pycolmap.Reconstruction, np.ndarray]:
    """The reconstruction of ``state`` with the observations ``mask [S, P]`` (points seen fewer than twice left
    out); returns it and each point's id in it (-1: left out)."""
    rec = colmap_io.new_reconstruction(
        state.extrinsics,
        state.intrinsics,
        sizes,
        names,
        keypoints=[colmap_io.to_colmap_pixels(xy[s, mask[s]]) for s in range(len(mask))],
        camera_model=opts.camera_model,
        shared_camera=opts.shared_camera,
        radial=state.radial,
    )
    idx = np.cumsum(mask, axis=1) - 1  # keypoint index of each observation in its image
    kept = np.nonzero(mask.sum(0) >= 2)[0]
    points, frames = np.nonzero(mask[:, kept].T)  # point-major: each point's track is contiguous
    starts = np.searchsorted(points, np.arange(len(kept) + 1))
    image_ids = frames + 1
    point2d = idx[frames, kept[points]]
    ids = np.full(mask.shape[1], -1, np.int64)
    colours = np.zeros((len(kept), 3), np.uint8) if rgb is None else np.asarray(rgb, np.uint8)[kept]
    ids[kept] = colmap_io.add_points(rec, state.xyz[kept], colours, image_ids, point2d, starts)
    return rec, ids


def _read_state(rec: pycolmap.Reconstruction, state: _State, ids: np.ndarray, shared: bool) -> _State:
    count = len(state.extrinsics)
    extrinsics = np.stack([colmap_io.image_extrinsic(rec.images[k + 1]) for k in range(count)])
    intrinsics, radial = state.intrinsics.copy(), state.radial.copy()
    for k in range(count):
        camera = rec.cameras[1 if shared else k + 1]
        intrinsics[k], extra = colmap_io.camera_parameters(camera)
        radial[k] = extra[0] if len(extra) else 0.0
    xyz = state.xyz.copy()
    for p in np.nonzero(ids >= 0)[0]:
        xyz[p] = rec.points3D[int(ids[p])].xyz
    return _State(extrinsics, intrinsics, radial, xyz)


def _solve(rec: pycolmap.Reconstruction, in_ba: np.ndarray, opts: BAOptions) -> None:
    options = pycolmap.BundleAdjustmentOptions()
    options.refine_focal_length = opts.refine_focal_length
    options.refine_principal_point = opts.refine_principal_point
    options.refine_extra_params = opts.camera_model == "SIMPLE_RADIAL"
    options.print_summary = False
    options.ceres.loss_function_type = pycolmap.LossFunctionType.CAUCHY
    options.ceres.loss_function_scale = opts.loss_scale
    options.ceres.solver_options.max_num_iterations = opts.max_iterations
    config = pycolmap.BundleAdjustmentConfig()
    for k in np.nonzero(in_ba)[0]:
        config.add_image(int(k) + 1)
    if in_ba[0]:
        config.set_constant_rig_from_world_pose(rec.images[1].frame_id)
    config.fix_gauge(pycolmap.BundleAdjustmentGauge.TWO_CAMS_FROM_WORLD)
    # COLMAP and Ceres log every failed LM step of a degenerate problem to stderr; the report says how it went.
    level, pycolmap.logging.minloglevel = pycolmap.logging.minloglevel, 2
    try:
        pycolmap.create_default_bundle_adjuster(options, config, rec).solve()
    finally:
        pycolmap.logging.minloglevel = level


def _rounds(state, xy, mask, in_ba, min_track, sizes, names, opts) -> tuple[dict, list[float]]:
    """The BA rounds (module docstring, 3.); returns ({state, mask, seconds per solve}, the inlier thresholds),
    no thresholds if no round ran."""
    seconds, thresholds = [], []
    count = opts.rounds if in_ba.sum() >= 2 else 0
    for index in range(count):
        mask = mask & (mask.sum(0, keepdims=True) >= min_track)
        if not mask.any():
            break
        rec, ids = _build(state, xy, mask, sizes, names, opts)
        tic = time.perf_counter()
        _solve(rec, in_ba & mask.any(1), opts)
        seconds.append(round(time.perf_counter() - tic, 4))
        state = _read_state(rec, state, ids, opts.shared_camera)
        errors = reprojection_errors(state, xy)
        threshold = _threshold(errors[mask], opts, last=index == count - 1)
        thresholds.append(round(threshold, 4))
        mask = mask & (errors <= threshold)
    return {"state": state, "mask": mask, "seconds": seconds}, thresholds


def bundle_adjust(
    tracks: Tracks,
    extrinsics: np.ndarray,
    intrinsics: np.ndarray,
    image_sizes_hw: np.ndarray,
    names: list[str],
    opts: BAOptions = DEFAULT_OPTIONS,
) -> BAResult:
    """Bundle-adjust ``tracks`` (module docstring) from the cameras ``extrinsics [S, 3, 4]`` (camera-from-world) and
    ``intrinsics [S, 3, 3]`` (original pixels of images of ``image_sizes_hw [S, 2]``), named ``names``."""
    start = time.perf_counter()
    count, num_points = tracks.vis.shape
    if np.shape(extrinsics) != (count, 3, 4) or np.shape(intrinsics) != (count, 3, 3):
        raise ValueError(f"need extrinsics [{count}, 3, 4] and intrinsics [{count}, 3, 3] for {count} frames")
    sizes = np.asarray(image_sizes_hw, np.int64)
    xy = np.asarray(tracks.xy, np.float64)
    state = _State(np.asarray(extrinsics, np.float64), np.asarray(intrinsics, np.float64), np.zeros(count), tracks.xyz)
    initial = state
    inside = (xy >= -0.5).all(-1) & (xy[..., 0] <= sizes[:, None, 1] - 0.5) & (xy[..., 1] <= sizes[:, None, 0] - 0.5)
    mask = (tracks.vis >= opts.vis_threshold) & inside & np.isfinite(xy).all(-1)
    mask[tracks.query_frame, np.arange(num_points)] = True
    candidates = mask.sum(1)
    gate = np.maximum(opts.init_max_reproj_error, opts.init_gate_frac * np.hypot(sizes[:, 0], sizes[:, 1]))
    gated = mask & (reprojection_errors(state, xy) <= gate[:, None])
    initial_inliers = gated.sum(1)
    held = initial_inliers < opts.min_frame_inliers
    held_counts = {int(f): int(initial_inliers[f]) for f in np.nonzero(held)[0]}
    # A frame that ends the rounds below the minimum is held out too and the adjustment redone without it: a
    # frame held by a handful of observations would be fitted to them, whatever its true pose.
    while True:
        in_ba = ~held
        min_track = max(2, min(opts.min_track_length, int(in_ba.sum())))
        rounds, thresholds = _rounds(initial, xy, gated & in_ba[:, None], in_ba, min_track, sizes, names, opts)
        state, mask = rounds["state"], rounds["mask"]
        weak = in_ba & (mask.sum(1) < opts.min_frame_inliers) if thresholds else np.zeros_like(held)
        if not weak.any():
            break
        held_counts.update({int(f): int(mask[f].sum()) for f in np.nonzero(weak)[0]})
        held |= weak
    counts = ", ".join(f"frame {f}: {n}" for f, n in sorted(held_counts.items()))
    held_text = f"frames {sorted(held_counts)} have fewer than {opts.min_frame_inliers} inlier observations ({counts})"
    if not thresholds:
        why = held_text + ", the others" if held.any() else "the frames"
        log.warning(
            f"bundle adjustment: not run: {why} share no point seen {min_track} times; the cameras stay the "
            "feed-forward ones"
        )
        mask &= reprojection_errors(state, xy) <= opts.max_reproj_error
    elif held.any():
        log.warning(f"bundle adjustment: {held_text}; kept out of the adjustment at their feed-forward poses")
    mask &= mask.sum(0, keepdims=True) >= min_track
    rec, ids = _build(state, xy, mask, sizes, names, opts, tracks.rgb)
    kept = np.nonzero(ids >= 0)[0]
    rec.update_point_3d_errors()
    errors_after = reprojection_errors(state, xy)
    report = dict(
        frames=count,
        points_in=int(num_points),
        points_kept=int(len(kept)),
        observations=int(mask.sum()),
        inliers_per_frame=mask.sum(1).tolist(),
        candidates_per_frame=candidates.tolist(),
        held_out_frames=np.nonzero(held)[0].tolist(),
        reproj_rmse_before=_rmse(reprojection_errors(initial, xy), mask),
        reproj_rmse_after=_rmse(errors_after, mask),
        reproj_max_after=float(errors_after[mask].max()) if mask.any() else float("nan"),
        solve_seconds=rounds["seconds"],
        ba_run=bool(thresholds),
        inlier_thresholds=thresholds,
        initial_inliers_per_frame=initial_inliers.tolist(),
        seconds=round(time.perf_counter() - start, 4),
        options=dataclasses.asdict(opts),
    )
    return BAResult(
        rec,
        state.extrinsics,
        state.intrinsics,
        state.radial,
        state.xyz[kept],
        np.asarray(tracks.rgb)[kept],
        kept,
        mask[:, kept],
        report,
    )
