"""Sequences longer than one forward: overlapping windows, aligned by robust Sim(3), chained, loop-closed.

``run_windows(predict, num_frames, options, directory)`` splits the frames into windows of ``options.window``
frames (every window the same length, so one compiled program serves them all; the last one starts early rather
than running short), calls ``predict(frame_indices)`` on each (a ``Predictions`` in that window's own frame) and:

1. aligns window k to window k-1 on the frames they share: the same pixel of the same frame is a correspondence,
   weighted by both windows' depth confidence, fitted by a Huber-IRLS Umeyama similarity (``sim3.robust_sim3``);
2. chains the similarities into window 0's frame (camera 0's), blends the overlap (depth and confidence ramp from
   the old window to the new across the overlap; each frame's camera is the one of the window it sits more
   centrally in) and writes every frame's arrays to memory-mapped ``.npy`` files in ``directory`` at once, so only
   two windows are ever in memory;
3. with loop closure, finds revisits from ``Predictions.frame_descriptor`` (cosine similarity between frames at
   least ``loop_min_gap`` apart), runs one window made of the frames around both ends of each loop, aligns it to
   both ends, and spreads the loop's error over the windows' similarities with a Sim(3) pose graph
   (``sim3.optimize_pose_graph``); every frame is then moved with its window's correction.

A window whose overlap has too few confident points raises ``WindowAlignmentError`` naming it, never a NaN camera.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vggt_jax.geometry.alignment import apply_similarity, transform_extrinsics
from vggt_jax.geometry.cameras import depth_to_world_points
from vggt_jax.geometry.pose_enc import extri_intri_to_pose_encoding
from vggt_jax.inference.pages import release_pages
from vggt_jax.inference.predictor import Predictions
from vggt_jax.reconstruct.sim3 import RobustFit, optimize_pose_graph, robust_sim3, sim3_parts

Predict = Callable[[np.ndarray], Predictions]


class WindowAlignmentError(ValueError):
    """Two windows (or a loop window) could not be aligned; the message names them and what to change."""


@dataclasses.dataclass(frozen=True)
class WindowOptions:
    """``window`` frames per forward, ``overlap`` shared with the previous window. Overlap points count where both
    windows' depth confidence exceeds ``min_conf`` and their combined (geometric-mean) confidence is in the top
    ``1 - conf_quantile``; at least ``min_points`` are needed, at most ``max_points`` (an even subsample) are used.
    Loop closure pairs frames whose descriptors' cosine similarity is at least ``loop_threshold`` and which are at
    least ``loop_min_gap`` frames apart (default: two windows), at most ``max_loops`` of them."""

    window: int = 60
    overlap: int = 30
    min_conf: float = 0.0
    conf_quantile: float = 0.5
    min_points: int = 64
    max_points: int = 20_000
    irls_iterations: int = 10
    huber_k: float = 2.0
    loop_closure: bool = True
    loop_threshold: float = 0.9
    loop_min_gap: int | None = None
    max_loops: int = 8

    def __post_init__(self):
        if self.window < 2:
            raise ValueError(f"--window must be at least 2 frames, got {self.window}")
        if not 1 <= self.overlap < self.window:
            raise ValueError(f"--overlap must be between 1 and --window - 1 = {self.window - 1}, got {self.overlap}")


def plan_windows(num_frames: int, window: int, overlap: int) -> list[np.ndarray]:
    """Frame indices of each window: starts ``window - overlap`` apart, every window ``window`` long (the last
    starts at ``num_frames - window``); one window of every frame when ``num_frames <= window``."""
    if num_frames <= window:
        return [np.arange(num_frames)]
    stride = window - overlap
    starts = list(range(0, num_frames - window, stride)) + [num_frames - window]
    return [np.arange(s, s + window) for s in starts]


@dataclasses.dataclass
class WindowedPredictions:
    """``predictions``: every frame in camera 0's frame, its large arrays memory-mapped from ``directory``;
    ``windows``: one dict per window (frames, similarity to camera 0's frame, alignment diagnostics); ``loops``:
    one dict per closed loop; ``pose_graph``: RMS log-similarity residual before/after (loop closure only)."""

    predictions: Predictions
    windows: list[dict]
    loops: list[dict]
    pose_graph: dict | None
    directory: Path | None


class FrameStore:
    """Per-frame arrays in ``.npy`` files opened as memory maps, written a frame at a time."""

    def __init__(self, directory: Path, shapes: dict[str, tuple[tuple[int, ...], np.dtype]]):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.arrays = {
            key: np.lib.format.open_memmap(directory / f"{key}.npy", mode="w+", dtype=dtype, shape=shape)
            for key, (shape, dtype) in shapes.items()
        }

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]

    def release(self) -> None:
        """Write the dirty pages back and drop them from this process's memory (pages.release_pages)."""
        release_pages(*self.arrays.values())

    def read_only(self) -> dict[str, np.ndarray]:
        for array in self.arrays.values():
            array.flush()
        return {key: np.load(self.directory / f"{key}.npy", mmap_mode="r") for key in self.arrays}


def overlap_fit(
    src: Predictions, src_rows: np.ndarray, dst_points: np.ndarray, dst_conf: np.ndarray, opts: WindowOptions, what: str
) -> RobustFit:
    """The similarity taking ``src``'s points of frames ``src_rows`` onto ``dst_points [n, H, W, 3]`` (same frames,
    same pixels) weighted by both confidences; raises WindowAlignmentError (naming ``what``) without enough."""
    points = src.world_points_from_depth[src_rows].reshape(-1, 3).astype(np.float64)
    conf = src.depth_conf[src_rows].reshape(-1).astype(np.float64)
    target = np.asarray(dst_points, np.float64).reshape(-1, 3)
    target_conf = np.asarray(dst_conf, np.float64).reshape(-1)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(points).all(-1) & np.isfinite(target).all(-1)
        valid &= np.isfinite(conf) & np.isfinite(target_conf) & (conf > opts.min_conf) & (target_conf > opts.min_conf)
    weight = np.sqrt(np.where(valid, conf * target_conf, 0.0))
    if valid.any() and opts.conf_quantile > 0:
        valid &= weight >= np.quantile(weight[valid], opts.conf_quantile)
    index = np.nonzero(valid)[0]
    if len(index) < opts.min_points:
        raise WindowAlignmentError(
            f"{what}: only {len(index)} points of the shared frames are confident in both (need {opts.min_points}); "
            "the frames there may be blank or out of focus. Raise --overlap, or lower WindowOptions.min_conf / "
            "conf_quantile / min_points"
        )
    if len(index) > opts.max_points:
        index = index[np.linspace(0, len(index) - 1, opts.max_points).astype(int)]
    fit = robust_sim3(points[index], target[index], weight[index], opts.irls_iterations, opts.huber_k)
    scale = sim3_parts(fit.matrix)[0]
    if not (np.isfinite(fit.matrix).all() and scale > 0):
        raise WindowAlignmentError(f"{what}: the shared frames' points give no finite similarity (scale {scale})")
    return fit


def _moved(pred: Predictions, rows: np.ndarray, matrix: np.ndarray) -> dict[str, np.ndarray]:
    """The arrays of ``pred``'s frames ``rows`` in the frame ``x' = matrix x``."""
    scale, rot, trans = sim3_parts(matrix)
    out = {
        "extrinsic": transform_extrinsics(pred.extrinsic[rows].astype(np.float64), scale, rot, trans),
        "intrinsic": pred.intrinsic[rows].astype(np.float64),
        "depth": pred.depth[rows] * scale,
        "depth_conf": pred.depth_conf[rows],
        "images": pred.images[rows],
    }
    if pred.world_points is not None:
        out["world_points"] = apply_similarity(pred.world_points[rows].astype(np.float64), scale, rot, trans)
        out["world_points_conf"] = pred.world_points_conf[rows]
    return out


def _store_shapes(first: Predictions, num_frames: int, with_images: bool) -> dict:
    height, width = first.images.shape[-2:]
    shapes = {
        "extrinsic": ((num_frames, 3, 4), np.float64),
        "intrinsic": ((num_frames, 3, 3), np.float64),
        "depth": ((num_frames, height, width), np.float32),
        "depth_conf": ((num_frames, height, width), np.float32),
        "world_points_from_depth": ((num_frames, height, width, 3), np.float32),
    }
    if with_images:
        shapes["images"] = ((num_frames, 3, height, width), np.float32)
    if first.world_points is not None:
        shapes["world_points"] = ((num_frames, height, width, 3), np.float32)
        shapes["world_points_conf"] = ((num_frames, height, width), np.float32)
    return shapes


def _write_frames(store: FrameStore, frames: np.ndarray, arrays: dict, new_weight: np.ndarray) -> None:
    """Write frames blending with what is stored: ``new_weight [n]`` 1 for a new frame, in (0, 1) in an overlap
    (depth, confidences and point-head points blend; the camera is the new one where the weight is >= 0.5)."""
    for row, frame in enumerate(frames):
        w = float(new_weight[row])
        take_camera = w >= 0.5
        for key in ("depth", "depth_conf", "world_points", "world_points_conf", "images"):
            if key in arrays and key in store.arrays:
                value = arrays[key][row]
                store[key][frame] = value if w >= 1.0 else (1 - w) * store[key][frame] + w * value
        if take_camera:
            store["extrinsic"][frame] = arrays["extrinsic"][row]
            store["intrinsic"][frame] = arrays["intrinsic"][row]
        _unproject(store, frame)


def _unproject(store: FrameStore, frame: int) -> None:
    with np.errstate(invalid="ignore"):
        store["world_points_from_depth"][frame] = depth_to_world_points(
            store["depth"][frame][None].astype(np.float64),
            store["extrinsic"][frame][None],
            store["intrinsic"][frame][None],
        )[0]


def _window_record(index: int, frames: np.ndarray, matrix: np.ndarray, fit: RobustFit | None, depth) -> dict:
    scale = sim3_parts(matrix)[0]
    record = dict(window=index, first_frame=int(frames[0]), last_frame=int(frames[-1]), scale=scale)
    if fit is not None:
        median = float(np.median(depth[np.isfinite(depth) & (depth > 0)])) if np.any(depth > 0) else float("nan")
        record.update(
            relative_scale=sim3_parts(fit.matrix)[0],
            residual=fit.residual,
            relative_residual=fit.residual / median,
            inlier_fraction=fit.inlier_fraction,
            points=fit.points,
        )
    return record


def run_windows(
    predict: Predict,
    num_frames: int,
    options: WindowOptions | None = None,
    directory: str | os.PathLike | None = None,
    progress: Callable[[str], None] | None = None,
    images: np.ndarray | None = None,
) -> WindowedPredictions:
    """Windowed inference over ``num_frames`` frames (module docstring). ``predict(indices)`` returns the
    ``Predictions`` of those frames; ``directory`` holds the memory-mapped outputs (needed when there is more than
    one window). With one window (``num_frames <= window``) this is exactly ``predict(all frames)``. ``images``:
    the model input of every frame (e.g. ``preprocess``'s memory map), which then becomes ``predictions.images``
    instead of a copy in ``directory``."""
    opts = options or WindowOptions()
    step = progress or (lambda message: None)
    windows = plan_windows(num_frames, opts.window, opts.overlap)
    if len(windows) == 1:
        pred = predict(windows[0])
        record = dict(window=0, first_frame=0, last_frame=num_frames - 1, scale=1.0)
        return WindowedPredictions(pred, [record], [], None, None)
    if directory is None:
        raise ValueError(f"{num_frames} frames make {len(windows)} windows: pass a directory for their outputs")
    store: FrameStore | None = None
    owner = np.full(num_frames, -1)
    nodes, edges, records = [], [], []
    descriptors = None
    prev: Predictions | None = None
    for k, frames in enumerate(windows):
        step(f"window {k + 1}/{len(windows)}: frames {frames[0]}-{frames[-1]}")
        pred = predict(frames)
        if store is None:
            store = FrameStore(Path(directory), _store_shapes(pred, num_frames, images is None))
        if pred.frame_descriptor is not None:
            if descriptors is None:
                descriptors = np.zeros((num_frames, pred.frame_descriptor.shape[-1]), np.float32)
            descriptors[frames] = pred.frame_descriptor
        fit = None
        if prev is None:
            matrix = np.eye(4)
        else:
            shared = np.intersect1d(frames, windows[k - 1])
            rows_new = np.searchsorted(frames, shared)
            rows_old = np.searchsorted(windows[k - 1], shared)
            what = f"window {k} (frames {frames[0]}-{frames[-1]}) against window {k - 1}"
            what += f" on frames {shared[0]}-{shared[-1]}"
            fit = overlap_fit(
                pred, rows_new, prev.world_points_from_depth[rows_old], prev.depth_conf[rows_old], opts, what
            )
            edges.append((k - 1, k, fit.matrix))
            matrix = nodes[-1] @ fit.matrix
        nodes.append(matrix)
        placed = owner[frames] >= 0
        weight = np.ones(len(frames))
        m = int(placed.sum())
        weight[placed] = np.arange(1, m + 1) / (m + 1)
        _write_frames(store, frames, _moved(pred, np.arange(len(frames)), matrix), weight)
        owner[frames[weight >= 0.5]] = k
        records.append(_window_record(k, frames, matrix, fit, store["depth"][frames[0]]))
        store.release()
        release_pages(images)
        prev = pred
    del prev
    loops, graph = [], None
    if opts.loop_closure and descriptors is not None:
        loops, graph = close_loops(predict, store, descriptors, owner, np.stack(nodes), edges, opts, step)
        if graph is not None:
            for record, matrix in zip(records, graph.pop("nodes"), strict=True):
                record["scale"] = sim3_parts(matrix)[0]
    return WindowedPredictions(_predictions(store, images), records, loops, graph, Path(directory))


def detect_loops(descriptors: np.ndarray, opts: WindowOptions) -> list[tuple[int, int, float]]:
    """``(i, j, similarity)`` pairs, ``j - i >= loop_min_gap``, most similar first, at most ``max_loops``; a pair
    closer than half a window (at both ends) to an accepted one is suppressed."""
    gap = opts.loop_min_gap or 2 * opts.window
    desc = descriptors / np.maximum(np.linalg.norm(descriptors, axis=-1, keepdims=True), 1e-12)
    candidates = []
    for begin in range(0, len(desc), 1024):
        block = desc[begin : begin + 1024] @ desc.T
        rows = np.arange(begin, begin + len(block))
        block[np.arange(desc.shape[0])[None] < rows[:, None] + gap] = -np.inf
        best = np.argmax(block, axis=1)
        for i, j in zip(rows, best, strict=True):
            if block[i - begin, j] >= opts.loop_threshold:
                candidates.append((int(i), int(j), float(block[i - begin, j])))
    accepted: list[tuple[int, int, float]] = []
    half = opts.window // 2
    for i, j, sim in sorted(candidates, key=lambda c: -c[2]):
        if all(abs(i - a) >= half or abs(j - b) >= half for a, b, _ in accepted):
            accepted.append((i, j, sim))
        if len(accepted) == opts.max_loops:
            break
    return accepted


def _around(center: int, count: int, num_frames: int) -> np.ndarray:
    start = int(np.clip(center - count // 2, 0, num_frames - count))
    return np.arange(start, start + count)


def close_loops(predict, store, descriptors, owner, nodes, edges, opts, step):
    """Loop windows, loop edges, the pose graph and the per-frame correction (module docstring, step 3)."""
    num_frames = len(owner)
    pairs = detect_loops(descriptors, opts)
    if not pairs:
        return [], None
    length_scale = float(np.median(store["depth"][0][store["depth"][0] > 0])) if np.any(store["depth"][0] > 0) else 1.0
    loop_edges, loops = [], []
    for n, (i, j, sim) in enumerate(pairs):
        step(f"loop {n + 1}/{len(pairs)}: frames {i} and {j}")
        near_i = _around(i, opts.window // 2, num_frames)
        near_j = _around(j, opts.window - opts.window // 2, num_frames)
        frames = np.concatenate([near_i, near_j])
        pred = predict(frames)
        fits = []
        for rows, ends in ((np.arange(len(near_i)), near_i), (np.arange(len(near_i), len(frames)), near_j)):
            what = f"loop window of frames {i} and {j} against frames {ends[0]}-{ends[-1]}"
            fits.append(
                overlap_fit(pred, rows, store["world_points_from_depth"][ends], store["depth_conf"][ends], opts, what)
            )
        a, b = int(owner[i]), int(owner[j])
        measured = np.linalg.inv(nodes[a]) @ fits[0].matrix @ np.linalg.inv(fits[1].matrix) @ nodes[b]
        loop_edges.append((a, b, measured))
        loops.append(dict(frame_a=i, frame_b=j, similarity=sim, window_a=a, window_b=b))
    new_nodes, before, after = optimize_pose_graph(nodes, edges + loop_edges, length_scale)
    for frame in range(num_frames):
        k = owner[frame]
        correction = new_nodes[k] @ np.linalg.inv(nodes[k])
        scale, rot, trans = sim3_parts(correction)
        store["extrinsic"][frame] = transform_extrinsics(store["extrinsic"][frame], scale, rot, trans)
        store["depth"][frame] *= scale
        if "world_points" in store.arrays:
            store["world_points"][frame] = apply_similarity(
                store["world_points"][frame].astype(np.float64), scale, rot, trans
            )
        _unproject(store, frame)
        if frame % 256 == 255:
            store.release()
    store.release()
    return loops, dict(rms_before=before, rms_after=after, nodes=new_nodes)


def _predictions(store: FrameStore, images: np.ndarray | None) -> Predictions:
    arrays = store.read_only()
    height, width = arrays["depth"].shape[1:]
    pose_enc = extri_intri_to_pose_encoding(arrays["extrinsic"], arrays["intrinsic"], (height, width))
    return Predictions(
        images=arrays["images"] if images is None else images,
        pose_enc=pose_enc,
        pose_enc_list=pose_enc[None],
        extrinsic=np.array(arrays["extrinsic"]),
        intrinsic=np.array(arrays["intrinsic"]),
        depth=arrays["depth"],
        depth_conf=arrays["depth_conf"],
        world_points=arrays.get("world_points"),
        world_points_conf=arrays.get("world_points_conf"),
        world_points_from_depth=arrays["world_points_from_depth"],
    )
