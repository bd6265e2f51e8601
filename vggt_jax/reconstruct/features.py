"""Classical image-feature tracks: SIFT keypoints matched between the frame pairs the predicted geometry says
overlap, geometrically verified, merged into multi-view tracks.

1. ``extract``: pycolmap's SIFT (CPU) on each frame's grey image, keypoints kept on the frame's content (not on
   padding). pycolmap over OpenCV, measured on this project's CPU (a 518-px synthetic frame): OpenCV's SIFT extracts
   in 0.04 s against pycolmap's 0.30 s but found about half the keypoints (300 vs 550 at texture scale 1), the
   tracker's time is small beside a forward either way, and pycolmap is already the bundle adjuster (no second
   library); ``benchmarks/bench_features.py --opencv`` runs the whole case with either.
2. ``overlapping_pairs``: a grid of each frame's confident predicted points projected with the predicted cameras
   into every other frame; a pair is matched when at least ``min_overlap`` of each frame's points land inside the
   other (and in front of it). Each frame keeps at most ``max_pairs_per_frame`` partners, the most overlapping, and
   at least its best one, so the pairs connect the frames without matching all of them.
3. ``match_descriptors``: mutual nearest neighbours that pass Lowe's ratio test.
4. ``verify``: a fundamental matrix by LO-RANSAC (pycolmap), inliers within ``ransac_px``; a pair with fewer than
   ``min_pair_inliers`` is dropped.
5. ``merge_tracks``: the verified matches' connected components (union-find over (frame, keypoint)); a component
   with two keypoints in one frame is ambiguous and dropped; the rest with at least ``min_track_length`` frames are
   the tracks.

Pixel coordinates are this project's (pixel centres at integers; COLMAP's keypoints are shifted by -0.5).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pycolmap

from vggt_jax.reconstruct.bundle import Tracks

GREY = np.array([0.299, 0.587, 0.114])


@dataclasses.dataclass(frozen=True)
class FeatureOptions:
    max_features: int = 4096  # per frame
    ratio: float = 0.8  # Lowe's ratio test
    min_overlap: float = 0.2
    max_pairs_per_frame: int = 8
    ransac_px: float = 2.0
    min_pair_inliers: int = 24
    min_track_length: int = 2
    seed: int = 0  # RANSAC's, so a run is repeatable
    max_scale: float | None = None  # px: keypoints of a larger scale are dropped

    def __post_init__(self):
        if not 0 < self.ratio <= 1:
            raise ValueError(f"the ratio test's ratio must be in (0, 1], got {self.ratio}")
        if self.max_features < 1 or self.max_pairs_per_frame < 1 or self.min_track_length < 2:
            raise ValueError("need max_features >= 1, max_pairs_per_frame >= 1 and min_track_length >= 2")


DEFAULT_FEATURE_OPTIONS = FeatureOptions()


@dataclasses.dataclass
class FeatureTracks:
    """``observations``: per track, ``[(frame, keypoint index)]`` sorted by frame; ``keypoints``: per frame
    ``[N, 2]`` (x, y) pixels; ``report``: counts and seconds per stage."""

    observations: list[list[tuple[int, int]]]
    keypoints: list[np.ndarray]
    report: dict

    def dense(self, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
        """``xy [S, P, 2]`` (0 where unobserved) and ``observed [S, P]`` bool."""
        xy = np.zeros((num_frames, len(self.observations), 2))
        observed = np.zeros((num_frames, len(self.observations)), bool)
        for p, track in enumerate(self.observations):
            for frame, key in track:
                xy[frame, p] = self.keypoints[frame][key]
                observed[frame, p] = True
        return xy, observed

    def to_tracks(self, points: np.ndarray, images: np.ndarray) -> Tracks:
        """``Tracks`` in these pixels: each track's query frame is its first, its initial point ``points [S, H, W,
        3]`` at the nearest pixel there and its colour ``images [S, 3, H, W]``'s; tracks whose point is not finite
        (no depth there) are left out."""
        xy, observed = self.dense(len(images))
        first = np.argmax(observed, 0)
        anchor = xy[first, np.arange(xy.shape[1])]
        height, width = images.shape[-2:]
        col = np.clip(np.round(anchor[:, 0]).astype(int), 0, width - 1)
        row = np.clip(np.round(anchor[:, 1]).astype(int), 0, height - 1)
        xyz = np.asarray(points[first, row, col], np.float64)
        rgb = np.round(np.clip(np.asarray(images)[first, :, row, col], 0, 1) * 255).astype(np.uint8)
        keep = np.isfinite(xyz).all(-1)
        return Tracks(xy, observed.astype(np.float64), first, xyz, rgb).select(keep)


def _extractor(opts: FeatureOptions):
    options = pycolmap.FeatureExtractionOptions()
    options.sift.max_num_features = opts.max_features
    options.num_threads = -1
    level, pycolmap.logging.minloglevel = pycolmap.logging.minloglevel, 2  # "Creating SIFT CPU feature extractor"
    try:
        return pycolmap.FeatureExtractor.create(options, device=pycolmap.Device.cpu)
    finally:
        pycolmap.logging.minloglevel = level


def extract(images: np.ndarray, masks: np.ndarray | None, opts: FeatureOptions = DEFAULT_FEATURE_OPTIONS):
    """SIFT of ``images [S, 3, H, W]`` in [0, 1]: per frame (keypoints ``[N, 2]``, unit-norm descriptors
    ``[N, 128]`` float32), keypoints only where ``masks [S, H, W]`` is true."""
    extractor = _extractor(opts)
    out = []
    for s, image in enumerate(np.asarray(images)):
        grey = np.ascontiguousarray(np.round(np.clip(np.tensordot(GREY, image, 1), 0, 1) * 255).astype(np.uint8))
        keypoints, descriptors = extractor.extract_from_uint8_array(grey)
        xy = np.array([(k.x, k.y) for k in keypoints], np.float64).reshape(-1, 2) - 0.5
        desc = np.asarray(descriptors.data, np.float32)  # COLMAP's uint8 quantisation of the unit descriptors
        if opts.max_scale is not None:
            small = np.array([k.compute_scale() for k in keypoints]) <= opts.max_scale
            xy, desc = xy[small], desc[small]
        if masks is not None:
            col = np.clip(np.round(xy[:, 0]).astype(int), 0, grey.shape[1] - 1)
            row = np.clip(np.round(xy[:, 1]).astype(int), 0, grey.shape[0] - 1)
            keep = masks[s][row, col]
            xy, desc = xy[keep], desc[keep]
        desc /= np.maximum(np.linalg.norm(desc, axis=-1, keepdims=True), 1e-12)
        out.append((xy, desc))
    return out


def overlapping_pairs(
    points: np.ndarray,
    valid: np.ndarray,
    extrinsics: np.ndarray,
    intrinsics: np.ndarray,
    hw: tuple[int, int],
    opts: FeatureOptions = DEFAULT_FEATURE_OPTIONS,
    stride: int = 8,
) -> tuple[list[tuple[int, int]], np.ndarray]:
    """The frame pairs to match (module docstring, 2.) from predicted ``points [S, H, W, 3]`` (world), ``valid
    [S, H, W]`` and cameras ``[S, 3, 4]`` / ``[S, 3, 3]`` of images of size ``hw``; returns (pairs ``i < j``, the
    overlap matrix ``[S, S]``: the fraction of row frame's points inside column frame)."""
    count = len(points)
    height, width = hw
    overlap = np.zeros((count, count))
    for i in range(count):
        pts = points[i, ::stride, ::stride][valid[i, ::stride, ::stride]].astype(np.float64)
        if len(pts) == 0:
            continue
        cam = np.einsum("sij,pj->spi", extrinsics[:, :, :3], pts) + extrinsics[:, None, :, 3]
        z = cam[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = np.einsum("sij,spj->spi", intrinsics[:, :2], cam / z[..., None])
        inside = (z > 1e-6) & (uv[..., 0] >= -0.5) & (uv[..., 0] <= width - 0.5)
        inside &= (uv[..., 1] >= -0.5) & (uv[..., 1] <= height - 0.5)
        overlap[i] = inside.mean(1)
    np.fill_diagonal(overlap, 0)
    score = np.minimum(overlap, overlap.T)
    chosen = set()
    for i in range(count):
        order = [j for j in np.argsort(-score[i], kind="stable") if j != i]
        good = [j for j in order if score[i, j] >= opts.min_overlap][: opts.max_pairs_per_frame]
        for j in good or order[:1]:
            chosen.add((min(i, j), max(i, j)))
    return sorted(chosen), overlap


def match_descriptors(a: np.ndarray, b: np.ndarray, ratio: float) -> np.ndarray:
    """``[M, 2]`` indices of mutual nearest neighbours between unit descriptors ``a [N, D]`` and ``b [K, D]`` whose
    nearest distance is below ``ratio`` times the second nearest."""
    if len(a) < 2 or len(b) < 2:
        return np.zeros((0, 2), np.int64)
    sim = a @ b.T
    dist = np.sqrt(np.maximum(2 - 2 * sim, 0))
    best_b = np.argmin(dist, 1)
    best_a = np.argmin(dist, 0)
    two = np.partition(dist, 1, axis=1)[:, :2]
    rows = np.arange(len(a))
    keep = (best_a[best_b] == rows) & (two[:, 0] < ratio * two[:, 1])
    return np.stack([rows[keep], best_b[keep]], -1)


def verify(xy_a: np.ndarray, xy_b: np.ndarray, matches: np.ndarray, opts: FeatureOptions) -> np.ndarray:
    """The matches consistent with one fundamental matrix (LO-RANSAC, ``ransac_px``); none if too few."""
    if len(matches) < max(opts.min_pair_inliers, 8):
        return matches[:0]
    ransac = pycolmap.RANSACOptions()
    ransac.max_error = opts.ransac_px
    ransac.random_seed = opts.seed
    result = pycolmap.estimate_fundamental_matrix(xy_a[matches[:, 0]], xy_b[matches[:, 1]], ransac)
    if result is None:
        return matches[:0]
    inliers = np.asarray(result["inlier_mask"], bool)
    return matches[inliers] if inliers.sum() >= opts.min_pair_inliers else matches[:0]


def merge_tracks(pair_matches: dict, sizes: list[int], min_length: int) -> tuple[list[list[tuple[int, int]]], int]:
    """Tracks from verified matches ``{(i, j): [M, 2]}`` over frames with ``sizes[s]`` keypoints (module
    docstring, 5.); returns (tracks, how many components were dropped as ambiguous)."""
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    parent = np.arange(offsets[-1])

    def find(x):
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for (i, j), matches in pair_matches.items():
        for a, b in matches:
            ra, rb = find(offsets[i] + a), find(offsets[j] + b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    frame_of = np.repeat(np.arange(len(sizes)), sizes)
    used = np.unique(
        np.concatenate(
            [np.concatenate([offsets[i] + m[:, 0], offsets[j] + m[:, 1]]) for (i, j), m in pair_matches.items()]
            or [np.zeros(0, np.int64)]
        )
    )
    roots = np.array([find(int(x)) for x in used], np.int64)
    order = np.lexsort((frame_of[used], roots))
    tracks, ambiguous = [], 0
    bounds = np.nonzero(np.diff(roots[order]))[0] + 1
    for group in np.split(used[order], bounds) if len(used) else []:
        frames = frame_of[group]
        if len(np.unique(frames)) != len(frames):
            ambiguous += 1
            continue
        if len(frames) >= min_length:
            tracks.append([(int(f), int(g - offsets[f])) for f, g in zip(frames, group, strict=True)])
    return tracks, ambiguous


def feature_tracks(
    images: np.ndarray,
    points: np.ndarray,
    valid: np.ndarray,
    extrinsics: np.ndarray,
    intrinsics: np.ndarray,
    masks: np.ndarray | None = None,
    opts: FeatureOptions = DEFAULT_FEATURE_OPTIONS,
    extractor=None,
) -> FeatureTracks:
    """Tracks of ``images [S, 3, H, W]`` (module docstring), pairs chosen from the predicted ``points``, ``valid``,
    cameras (``overlapping_pairs``); keypoints only inside ``masks [S, H, W]``. ``extractor``: another function
    with ``extract``'s signature (the benchmark's OpenCV SIFT)."""
    count = len(images)
    seconds = {}
    tic = time.perf_counter()
    features = (extractor or extract)(images, masks, opts)
    seconds["extract"] = time.perf_counter() - tic
    tic = time.perf_counter()
    pairs, _ = overlapping_pairs(points, valid, extrinsics, intrinsics, images.shape[-2:], opts)
    seconds["pairs"] = time.perf_counter() - tic
    tic = time.perf_counter()
    matched, verified = {}, {}
    for i, j in pairs:
        matches = match_descriptors(features[i][1], features[j][1], opts.ratio)
        matched[(i, j)] = len(matches)
        kept = verify(features[i][0], features[j][0], matches, opts)
        if len(kept):
            verified[(i, j)] = kept
    seconds["match"] = time.perf_counter() - tic
    tic = time.perf_counter()
    tracks, ambiguous = merge_tracks(verified, [len(f[0]) for f in features], opts.min_track_length)
    seconds["merge"] = time.perf_counter() - tic
    lengths = np.array([len(t) for t in tracks]) if tracks else np.zeros(0)
    report = dict(
        keypoints_per_frame=[len(f[0]) for f in features],
        pairs=len(pairs),
        pairs_verified=len(verified),
        matches=int(sum(matched.values())),
        verified_matches=int(sum(len(m) for m in verified.values())),
        tracks=len(tracks),
        ambiguous_tracks_dropped=ambiguous,
        mean_track_length=round(float(lengths.mean()), 3) if len(lengths) else 0.0,
        seconds={k: round(v, 3) for k, v in seconds.items()},
        seconds_per_frame=round(sum(seconds.values()) / max(count, 1), 4),
    )
    return FeatureTracks(tracks, [f[0] for f in features], report)
