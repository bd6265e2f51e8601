"""The training input pipeline: a grain dataset of ready batches, deterministic, sharded and checkpointable.

    it = make_train_iterator(config.data, seed=0)          # process index/count from jax unless given
    batch = next(it)                                       # dict of numpy arrays, see below
    state = it.get_state()                                 # JSON-serialisable; save it with the checkpoint
    it = make_train_iterator(config.data, seed=0); it.set_state(state)   # resumes with the same next batches

Design. Element ``t`` of the grain ``MapDataset`` is the whole batch of step ``t`` (a pure function of ``(seed, t,
process_index)``), so restoring is just setting the step, and worker processes (``num_workers``) build whole batches.
Each step draws, identically on every process (from ``(seed, t)`` only), its frame count S, padded count S' (the
next ``frame_buckets`` entry), image height H (from ``aspect_ratios``; W = ``img_size``) and B = image budget // S'.
So the shapes ``(B, S', H, W)`` come from the short list ``vggt_jax.data.config.batch_shapes(config)``: the
trainer compiles at most one program per shape, never one per step. Each sample then draws (from ``(seed, t,
process_index, b)``) a scene of this process's shard (scenes are split into contiguous, disjoint ranges by process:
the split of grain's ``ShardOptions``) and S of its frames, and goes through ``make_sample``:

    load + check frames  ->  transform_frame (zoom crop around the principal point, resize, centre crop; intrinsics
    exact)  ->  colour jitter  ->  world points and masks from depth  ->  tracks  ->  normalisation  ->  padding

Batch (numpy; images channels-last, see ``channels_first`` for the model's [B, S, 3, H, W]):

    images        [B, S, H, W, 3] float32 in [0, 1]
    extrinsics    [B, S, 3, 4] float32   camera-from-world, OpenCV; after normalisation frame 0 is [I | 0]
    intrinsics    [B, S, 3, 3] float32   pixels, pixel centres at integers, principal point within 0.5 px of centre
    depths        [B, S, H, W] float32   camera z, 0 = invalid
    world_points  [B, S, H, W, 3] float32 (0 where invalid)
    point_masks   [B, S, H, W] bool      valid depth / points
    tracks        [B, S, N, 2] float32   (x, y) pixels; tracks[:, 0] are the query pixels in frame 0
    track_vis     [B, S, N] bool
    frame_mask    [B, S] bool            False on padding frames (repeats of real frames, with valid GT)
    scale         [B] float32            the normalisation divisor (metric = normalised * scale); 1 if not normalised
    scene_ids     [B] int32, frame_ids [B, S] int32   where the sample came from (source indices)

Normalisation (``config.normalize``, on by default) is the official trainer's ``normalize_camera_extrinsics_and_
points_batch``, applied HERE, once, per sample over its real frames: extrinsics, world points and depths in a batch
are already relative to camera 0 and divided by the mean point distance. The trainer must not normalise again.
(A sample without any valid depth, e.g. a COLMAP scene without dense maps, is divided by the mean camera distance
from camera 0 instead of upstream's 1e-6 floor, with a warning.)

Worker processes (``num_workers > 0``) are started with spawn: a script using them needs the
``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import grain
import ml_collections
import numpy as np

from vggt_jax.data import config as data_config
from vggt_jax.data import transforms
from vggt_jax.data.sources import DataError, check_frame, report
from vggt_jax.data.tracks import build_tracks
from vggt_jax.geometry import camera_centers


def shard_range(num_scenes: int, process_index: int, process_count: int) -> range:
    """The contiguous scene indices of a process (the same split as grain's ``ShardOptions``, drop_remainder False)."""
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} is not in [0, {process_count})")
    per_shard, extra = divmod(num_scenes, process_count)
    start = per_shard * process_index + min(process_index, extra)  # the first `extra` shards take one more
    shard = range(start, start + per_shard + (process_index < extra))
    if len(shard) == 0:
        raise ValueError(f"process {process_index} of {process_count} gets no scene: the source has {num_scenes}")
    return shard


def step_rng(seed: int, step: int) -> np.random.Generator:
    """Draws shared by all processes at ``step`` (frame count, image height)."""
    return np.random.default_rng([seed, step, 0])


def item_rngs(seed: int, step: int, process_index: int, item: int) -> dict[str, np.random.Generator]:
    """Independent generators for each stage of sample ``item`` of ``step`` on ``process_index``."""
    children = np.random.SeedSequence([seed, step, 1, process_index, item]).spawn(4)
    return {
        k: np.random.default_rng(s) for k, s in zip(("select", "geometry", "color", "tracks"), children, strict=True)
    }


def step_plan(config, seed: int, step: int) -> dict:
    """``{num_frames S, padded_frames S', height, width, batch_size B}`` of a step (the same on every process)."""
    rng = step_rng(seed, step)
    counts = data_config.frame_counts(config)
    if config.pad_to_bucket:
        lo, hi = config.num_frames
        num = int(rng.integers(lo, hi + 1))
        padded = min(b for b in config.frame_buckets if b >= num)
    else:
        num = padded = counts[int(rng.integers(len(counts)))]
    heights = data_config.image_heights(config)
    height = heights[int(rng.integers(len(heights)))]
    return dict(
        num_frames=num,
        padded_frames=padded,
        height=height,
        width=config.img_size,
        batch_size=data_config.batch_size(config, padded),
    )


def sample_frame_ids(rng: np.random.Generator, available: int, count: int, config) -> list[int]:
    """``count`` frame indices of a scene with ``available`` frames; repeats allowed when configured or unavoidable."""
    replace = config.allow_duplicate_frames or available < count
    if config.frame_sampling == "nearby":
        anchor = int(rng.integers(available))
        reach = max(1, int(count * config.nearby_ratio))
        window = np.arange(max(0, anchor - reach), min(available, anchor + reach + 1))
        window = window[window != anchor]
        if len(window) == 0:
            return [anchor] * count
        others = rng.choice(window, count - 1, replace=replace or len(window) < count - 1)
        return [anchor] + [int(i) for i in others]
    return [int(i) for i in rng.choice(available, count, replace=replace)]


class BadFrames:
    """What one process has learnt about bad data: known bad frames (never loaded again) and logged messages.

    Only a cache: a known bad frame is treated exactly as if it had been loaded and found bad, so batches do not
    depend on what a process saw before (a restored iterator yields the same batches).
    """

    def __init__(self):
        self.known: dict[tuple[int, int], DataError] = {}
        self.reported: set[str] = set()


def load_frames(source, scene_ids, config, rng: np.random.Generator, count: int, bad_frames: BadFrames | None = None):
    """Draw a scene and ``count`` good frames of it: ``(scene, frame_ids, frames)``.

    A bad frame (``DataError`` from the source or ``check_frame``) is reported (raised if ``on_bad_frame`` is
    "raise", logged once per process otherwise) and replaced by another frame of the scene. A scene is given up after
    ``max_retries`` bad frames or when none is left, and another scene is drawn; after ``max_retries + 1`` scenes
    without a sample, the sample fails with a ``DataError``.
    """
    bad_frames = bad_frames if bad_frames is not None else BadFrames()
    for _ in range(config.max_retries + 1):
        scene = int(scene_ids[int(rng.integers(len(scene_ids)))])
        name, available = source.scene_name(scene), source.num_frames(scene)
        ids = sample_frame_ids(rng, available, count, config)
        loaded, bad = {}, set()
        k = 0
        while k < len(ids):
            fid = ids[k]
            if fid not in loaded:
                error = bad_frames.known.get((scene, fid))
                if error is None:
                    try:
                        loaded[fid] = check_frame(source.load_frame(scene, fid), name)
                    except DataError as e:
                        report(e, config.on_bad_frame, bad_frames.reported)
                        bad_frames.known[(scene, fid)] = error = e
                if error is not None:
                    bad.add(fid)
                    good = [i for i in range(available) if i not in bad]
                    if not good or len(bad) > config.max_retries:
                        break
                    ids[k] = int(rng.choice(good))
                    continue
            k += 1
        if k == len(ids):
            return scene, ids, [loaded[i] for i in ids]
    message = f"no usable sample after {config.max_retries + 1} scene draws (max_retries); see the warnings above"
    raise DataError(name, None, message)


def make_sample(
    source,
    scene_ids,
    config,
    rngs: dict,
    num_frames: int,
    padded_frames: int,
    target_hw,
    bad_frames: BadFrames | None = None,
) -> dict:
    """One sample: ``num_frames`` frames of a scene, transformed and padded to ``padded_frames`` (shapes in the
    module docstring, without the batch axis). ``rngs``: ``item_rngs(...)``."""
    scene, ids, frames = load_frames(source, scene_ids, config, rngs["select"], num_frames, bad_frames)
    augs = config.augs
    images, depths, intrinsics = [], [], []
    for frame in frames:
        if config.training:
            params = transforms.sample_frame_params(rngs["geometry"], augs.scales, augs.rescale_margin)
        else:
            params = dict(zoom_hw=(1.0, 1.0), margin=0.0)
        image, depth, intrinsic = transforms.transform_frame(
            frame["image"], frame["depth"], frame["intrinsic"], target_hw, params, augs.safe_bound
        )
        images.append(image.astype(np.float32) / 255.0)
        depths.append(depth)
        intrinsics.append(intrinsic)
    if config.training:
        color = transforms.sample_color_params(rngs["color"], num_frames, augs)
        images = [transforms.color_jitter(img, p) for img, p in zip(images, color, strict=True)]
    extrinsics = np.stack([f["extrinsic"] for f in frames])
    intrinsics, depths = np.stack(intrinsics), np.stack(depths).astype(np.float32)
    world_points, masks = transforms.world_points_from_depth(depths, extrinsics, intrinsics)
    tracks, track_vis, ok = build_tracks(
        world_points, depths, masks, extrinsics, intrinsics, config.num_tracks, rngs["tracks"]
    )
    reported = bad_frames.reported if bad_frames is not None else None
    if not ok and masks.any():
        report(
            DataError(source.scene_name(scene), None, "a sample has no trackable pixel in frame 0"), "skip", reported
        )
    scale = 1.0
    if config.normalize:
        fallback = None
        if not masks.any():
            # No depth (e.g. a COLMAP scene without dense maps): upstream would divide by its 1e-6 floor; the mean
            # camera distance from camera 0 is the scale the cameras themselves offer.
            centres = camera_centers(extrinsics)
            spread = float(np.linalg.norm(centres - centres[0], axis=-1).mean())
            fallback = spread if spread > 1e-6 else 1.0
            message = "no valid depth in a sample: normalised by the mean camera distance from camera 0"
            report(DataError(source.scene_name(scene), None, message), "skip", reported)
        extrinsics, world_points, depths, scale = transforms.normalize_to_first_camera(
            extrinsics, world_points, depths, masks, fallback
        )
        world_points = np.where(masks[..., None], world_points, 0.0)
    pad = np.arange(padded_frames) % num_frames  # padding repeats real frames: valid inputs with valid GT
    return dict(
        images=np.stack([images[i] for i in pad]),
        extrinsics=extrinsics[pad].astype(np.float32),
        intrinsics=intrinsics[pad].astype(np.float32),
        depths=depths[pad].astype(np.float32, copy=False),
        world_points=world_points[pad].astype(np.float32, copy=False),
        point_masks=masks[pad],
        tracks=tracks[pad],
        track_vis=track_vis[pad],
        frame_mask=np.arange(padded_frames) < num_frames,
        scale=np.float32(scale),
        scene_ids=np.int32(scene),
        frame_ids=np.asarray(ids, np.int32)[pad],
    )


class BatchMaker:
    """``step -> batch``: the grain map function (picklable; workers get a copy)."""

    def __init__(self, source, config, seed: int, process_index: int, process_count: int):
        data_config.validate(config)
        self.source, self.seed, self.process_index = source, int(seed), int(process_index)
        self.config = ml_collections.FrozenConfigDict(config)
        self.scene_ids = np.asarray(shard_range(len(source), process_index, process_count))
        self.bad_frames = BadFrames()

    def __call__(self, step: int) -> dict:
        plan = step_plan(self.config, self.seed, step)
        samples = [
            make_sample(
                self.source,
                self.scene_ids,
                self.config,
                item_rngs(self.seed, step, self.process_index, b),
                plan["num_frames"],
                plan["padded_frames"],
                (plan["height"], plan["width"]),
                self.bad_frames,
            )
            for b in range(plan["batch_size"])
        ]
        return {key: np.stack([s[key] for s in samples]) for key in samples[0]}


def make_source(source_config):
    """The scene source described by ``config.source`` (see ``config.get_config``)."""
    kind = source_config.kind
    percentile = source_config.depth_max_percentile if source_config.depth_max_percentile > 0 else None
    if kind == "synthetic":
        from vggt_jax.data.synthetic import TRAJECTORIES, SyntheticSource

        c = source_config
        trajectories = tuple(c.trajectories) or TRAJECTORIES
        return SyntheticSource(c.num_scenes, c.frames_per_scene, c.height, c.width, c.seed, trajectories)
    if kind == "tfds":
        from vggt_jax.data.tfds_builder import TfdsSceneSource

        return TfdsSceneSource(source_config.path, source_config.split)
    if kind == "co3d":
        from vggt_jax.data.readers.co3d import load_co3d
        from vggt_jax.data.sources import FileSceneSource

        categories = tuple(source_config.categories) or None
        scenes = load_co3d(source_config.path, categories, min_frames=source_config.min_frames, on_error="skip")
        return FileSceneSource(scenes, depth_max_percentile=percentile)
    if kind == "colmap":
        from pathlib import Path

        from vggt_jax.data.readers.colmap import load_colmap_scene
        from vggt_jax.data.sources import FileSceneSource

        root = Path(source_config.path)
        folders = [root] if (root / "sparse").is_dir() else sorted(p for p in root.iterdir() if (p / "sparse").is_dir())
        scenes = [load_colmap_scene(f, on_error="skip") for f in folders]
        scenes = [s for s in scenes if len(s.frames) >= source_config.min_frames]
        return FileSceneSource(scenes, depth_max_percentile=percentile)
    raise ValueError(f"unknown data.source.kind {kind!r}")


def make_train_iterator(
    config, seed: int, process_index: int | None = None, process_count: int | None = None, source=None
) -> grain.DatasetIterator:
    """A checkpointable iterator of training batches (see the module docstring).

    Args:
      config: the data ConfigDict (``vggt_jax.data.config.get_config()``, usually ``config.data``).
      seed: data seed; the same seed, process and step always give the same batch.
      process_index, process_count: this process's shard; default ``jax.process_index()``/``jax.process_count()``.
        Tests pass them explicitly to emulate several hosts in one process.
      source: a scene source; default ``make_source(config.source)``.
    Returns:
      a grain ``DatasetIterator`` (``next``, ``get_state``, ``set_state``); its state is a small JSON-able dict to save
      with the model checkpoint. With orbax: ``CheckpointManager(..., item_handlers={"data":
      grain.checkpoint.CheckpointHandler()})``, then ``args.Composite(data=grain.checkpoint.CheckpointSave(it))`` to
      save and ``grain.checkpoint.CheckpointRestore(it)`` to restore into a fresh iterator.
    """
    if process_index is None or process_count is None:
        import jax

        process_index, process_count = jax.process_index(), jax.process_count()
    source = source if source is not None else make_source(config.source)
    maker = BatchMaker(source, config, seed, process_index, process_count)
    dataset = grain.MapDataset.range(0, 2**62).map(maker)
    read = grain.ReadOptions(num_threads=config.num_threads, prefetch_buffer_size=config.prefetch)
    iter_dataset = dataset.to_iter_dataset(read)
    if config.num_workers > 0:
        from absl import flags

        if not flags.FLAGS.is_parsed():
            # grain's worker processes read absl flags (UnparsedFlagAccessError outside an absl app): use defaults.
            flags.FLAGS.mark_as_parsed()
        options = grain.MultiprocessingOptions(config.num_workers, per_worker_buffer_size=config.worker_buffer_size)
        iter_dataset = iter_dataset.mp_prefetch(options)
    return iter(iter_dataset)


def channels_first(images):
    """``[..., H, W, 3]`` -> ``[..., 3, H, W]`` (numpy or jax arrays): the layout ``VGGT`` takes."""
    return images.swapaxes(-1, -3).swapaxes(-1, -2)
