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
    exact)  ->  radial distortion  ->  exposure  ->  motion blur  ->  colour jitter  ->  world points and masks from
    depth  ->  tracks  ->  normalisation  ->  padding

(distortion, exposure and blur: ``vggt_jax.data.augment``, off in the default config as in the official trainer.)

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
    distortion    [B, S, 2] float32      (k1, k2) of frames seen through a distorted lens (augment module), else 0
    scale         [B] float32            the normalisation divisor (metric = normalised * scale); 1 if not normalised
    scene_ids     [B] int32, frame_ids [B, S] int32   where the sample came from (indices into its source)
    source_ids    [B] int32              which mixed source (index into ``data_config.plan_configs``; 0 unmixed)

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

from vggt_jax.data import augment, transforms
from vggt_jax.data import config as data_config
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
    # Children are keyed by their index, so streams added at the end leave the earlier ones' draws unchanged.
    names = ("select", "geometry", "color", "tracks", "lens", "sensor")
    children = np.random.SeedSequence([seed, step, 1, process_index, item]).spawn(len(names))
    return {k: np.random.default_rng(s) for k, s in zip(names, children, strict=True)}


def step_plan(config, seed: int, step: int) -> dict:
    """``{source, num_frames S, padded_frames S', height, width, batch_size B}`` of a step (the same on every
    process). With ``config.mix``, ``source`` (an index into ``data_config.plan_configs``) is drawn by weight first
    and S and H come from that source's ranges; without, ``source`` is 0."""
    index = 0
    plans = data_config.plan_configs(config)
    if len(plans) > 1 or config.mix:
        weights = np.array([weight for _, weight, _, _ in plans])
        index = int(np.random.default_rng([seed, step, 2]).choice(len(plans), p=weights / weights.sum()))
        config = plans[index][3]
    return dict(_shape_plan(config, seed, step), source=index)


def _shape_plan(config, seed: int, step: int) -> dict:
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
    augs, train = config.augs, config.training
    lenses = augment.sample_lens_params(rngs["lens"], num_frames, augs) if train else [augment.NO_LENS] * num_frames
    images, depths, intrinsics = [], [], []
    for frame, lens in zip(frames, lenses, strict=True):
        if train:
            params = transforms.sample_frame_params(rngs["geometry"], augs.scales, augs.rescale_margin)
        else:
            params = dict(zoom_hw=(1.0, 1.0), margin=0.0)
        image, depth, intrinsic = transforms.transform_frame(
            frame["image"],
            frame["depth"],
            frame["intrinsic"],
            target_hw,
            dict(params, pp_shift=lens["pp_shift"]),
            augs.safe_bound,
        )
        image, depth = augment.radial_distort(image, depth, intrinsic, lens["distortion"])
        images.append(image)
        depths.append(depth)
        intrinsics.append(intrinsic)
    if train:
        exposures = augment.sample_exposure_params(rngs["sensor"], num_frames, augs)
        blurs = augment.sample_blur_params(rngs["sensor"], num_frames, augs)
        images = [
            augment.motion_blur(augment.exposure(img, e), b) for img, e, b in zip(images, exposures, blurs, strict=True)
        ]
        color = transforms.sample_color_params(rngs["color"], num_frames, augs)
        images = [transforms.color_jitter(img, p) for img, p in zip(images, color, strict=True)]
    else:
        images = [img.astype(np.float32) / 255.0 for img in images]
    extrinsics = np.stack([f["extrinsic"] for f in frames])
    intrinsics, depths = np.stack(intrinsics), np.stack(depths).astype(np.float32)
    distortions = np.array([lens["distortion"] for lens in lenses], np.float64)
    lensed = distortions if distortions.any() else None
    world_points, masks = transforms.world_points_from_depth(depths, extrinsics, intrinsics, lensed)
    tracks, track_vis, ok = build_tracks(
        world_points, depths, masks, extrinsics, intrinsics, config.num_tracks, rngs["tracks"], distortions=lensed
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
        distortion=distortions[pad].astype(np.float32),
        scale=np.float32(scale),
        scene_ids=np.int32(scene),
        frame_ids=np.asarray(ids, np.int32)[pad],
    )


class BatchMaker:
    """``step -> batch``: the grain map function (picklable; workers get a copy). ``sources``: one scene source per
    entry of ``data_config.plan_configs(config)``."""

    def __init__(self, sources, config, seed: int, process_index: int, process_count: int):
        data_config.validate(config)
        self.sources, self.seed, self.process_index = list(sources), int(seed), int(process_index)
        self.config = ml_collections.FrozenConfigDict(config)
        names = [name for name, _, _, _ in data_config.plan_configs(config)]
        if len(self.sources) != len(names):
            raise ValueError(f"{len(self.sources)} scene sources given for the {len(names)} of the config {names}")
        self.scene_ids = [np.asarray(shard_range(len(s), process_index, process_count)) for s in self.sources]
        self.bad_frames = [BadFrames() for _ in self.sources]

    def __call__(self, step: int) -> dict:
        plan = step_plan(self.config, self.seed, step)
        index = plan["source"]
        samples = [
            make_sample(
                self.sources[index],
                self.scene_ids[index],
                self.config,
                item_rngs(self.seed, step, self.process_index, b),
                plan["num_frames"],
                plan["padded_frames"],
                (plan["height"], plan["width"]),
                self.bad_frames[index],
            )
            for b in range(plan["batch_size"])
        ]
        batch = {key: np.stack([s[key] for s in samples]) for key in samples[0]}
        batch["source_ids"] = np.full(plan["batch_size"], index, np.int32)
        return batch


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
    from vggt_jax.data.readers import LAYOUTS, load_scenes
    from vggt_jax.data.sources import FileSceneSource

    if kind in LAYOUTS:
        options = {}
        if kind == "co3d":
            options["categories"] = tuple(source_config.categories) or None
        if kind in ("scannet", "replica"):
            options["stride"] = int(source_config.stride)
        scenes = load_scenes(kind, source_config.path, source_config.min_frames, on_error="skip", **options)
        if not scenes:
            raise DataError(source_config.path, None, f"no usable {kind} scene (see the warnings above)")
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
      source: a scene source, or with ``config.mix`` a list of them (in ``data_config.plan_configs`` order);
        default: ``make_source`` of each configured source.
    Returns:
      a grain ``DatasetIterator`` (``next``, ``get_state``, ``set_state``); its state is a small JSON-able dict to save
      with the model checkpoint. With orbax: ``CheckpointManager(..., item_handlers={"data":
      grain.checkpoint.CheckpointHandler()})``, then ``args.Composite(data=grain.checkpoint.CheckpointSave(it))`` to
      save and ``grain.checkpoint.CheckpointRestore(it)`` to restore into a fresh iterator.
    """
    if process_index is None or process_count is None:
        import jax

        process_index, process_count = jax.process_index(), jax.process_count()
    if source is None:
        sources = [make_source(entry) for _, _, entry, _ in data_config.plan_configs(config)]
    else:
        sources = list(source) if isinstance(source, list | tuple) else [source]
    maker = BatchMaker(sources, config, seed, process_index, process_count)
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
