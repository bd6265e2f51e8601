"""Data settings as an ml_collections ConfigDict, with the official trainer's defaults where it has them.

Experiment files put this under ``config.data`` and override fields from the command line
(``--config.data.img_size=224``). ``get_config("tiny")`` is a laptop-sized variant (small synthetic scenes).
"""

from __future__ import annotations

import math

import ml_collections

# "synthetic", "tfds" and the file layouts of vggt_jax.data.readers.LAYOUTS.
SOURCE_KINDS = ("synthetic", "tfds", "colmap", "co3d", "scannet", "megadepth", "replica", "folder", "batch")
# The paper's "exposure changes, motion blur, lens differences" at the rates configs/finetune.py trains with
# (``config.augs.update(PAPER_AUGS)``); the ranges are the ``augs`` defaults.
PAPER_AUGS = dict(exposure_p=0.5, blur_p=0.25, distortion_p=0.25)


def get_config(variant: str = "default") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.img_size = 518  # width W of every image (official img_size); must be a multiple of patch_size
    c.patch_size = 14
    # Height / width choices; each step draws one (the official trainer draws from U[0.33, 1] per batch, which
    # would compile ~26 shapes at 518 px; a few buckets keep the number of compiled shapes small).
    c.aspect_ratios = (0.5, 0.75, 1.0)
    c.num_frames = (2, 24)  # S range per sample, inclusive (official img_nums)
    # pad_to_bucket: S is drawn from num_frames and padded up to the next bucket by repeating the sample's frames
    # (frame_mask False on the repeats); otherwise S is drawn from the buckets within num_frames and never padded.
    c.frame_buckets = (2, 4, 8, 16, 24)
    c.pad_to_bucket = True
    # Per-process image budget (official max_img_per_gpu): a step's batch holds B = budget // S_bucket samples,
    # rounded down to a multiple of batch_multiple (e.g. the local device count) and at least batch_multiple.
    c.max_images_per_batch = 48
    c.batch_multiple = 1
    c.num_tracks = 256  # tracks per sample (official track_num 1024, with tracks off by default)
    c.training = True  # False: no augmentation (official validation settings)
    c.augs = ml_collections.ConfigDict(
        dict(
            scales=(0.8, 1.2),  # zoom: fraction of each axis kept around the principal point, capped at 1
            rescale_margin=0.3,  # extra resize margin ~ triangular(0, 0, x) x the long side (official rescale_aug)
            safe_bound=4.0,  # px margin before the final centre crop
            brightness=0.5,
            contrast=0.5,
            saturation=0.5,
            hue=0.1,
            p=0.9,  # probability of colour jitter
            gray_p=0.05,
            cojitter=True,  # same colour jitter for all frames of a sample, with probability 1 - cojitter_ratio
            cojitter_ratio=0.3,
            # Sensor and lens (vggt_jax.data.augment). Off by default, as in the official trainer; the paper's
            # recipe ("exposure changes, motion blur, lens differences") is on in configs/finetune.py.
            exposure_p=0.0,  # probability of an exposure change
            exposure_stops=(-1.0, 1.0),  # gain = 2 ** U(stops), in linear light, clipped at saturation
            exposure_gamma=(0.8, 1.25),  # log-uniform gamma on the linear values
            exposure_per_frame=True,  # auto-exposure: a gain per frame (False: one per scene)
            blur_p=0.0,  # probability of motion blur per frame
            blur_length=(3.0, 12.0),  # px at the training resolution; angle uniform
            distortion_p=0.0,  # probability of a radially distorted lens
            k1=(-0.15, 0.15),  # undistortion coefficients (augment module docstring), uniform
            k2=(-0.03, 0.03),
            distortion_per_frame=False,  # False: one lens per scene
            pp_shift=0.0,  # max principal-point offset from the centre, a fraction of the image size
        )
    )
    c.frame_sampling = "random"  # "random" (official) or "nearby": frames within S * nearby_ratio of an anchor
    c.nearby_ratio = 2.0
    c.allow_duplicate_frames = True  # official allow_duplicate_img: frames drawn with replacement
    # GT normalisation (camera-0 frame, mean point distance 1) happens HERE, in the pipeline; the trainer and the
    # losses must not normalise again.
    c.normalize = True
    c.on_bad_frame = "skip"  # "skip": log once and draw another frame/scene; "raise": stop with the DataError
    c.max_retries = 16  # bad frames tolerated per sample before giving up with an error
    c.num_workers = 0  # grain worker processes (0: batches are built in the calling process)
    c.worker_buffer_size = 2  # batches prefetched per worker
    c.num_threads = 1  # threads building batches in each process (grain ReadOptions)
    c.prefetch = 2  # batches buffered ahead by those threads
    c.source = ml_collections.ConfigDict(
        dict(
            kind="synthetic",  # one of SOURCE_KINDS
            path="",  # tfds: data_dir of a built dataset; a layout's scene folder or a folder of scenes (co3d: root)
            split="train",  # tfds
            categories=(),  # co3d: empty = all
            min_frames=2,  # file layouts: drop scenes with fewer frames (official CO3D uses 24)
            depth_max_percentile=-1.0,  # file layouts: > 0 drops depth above this percentile (official CO3D: 98)
            stride=1,  # scannet / replica: keep every k-th frame of a video-rate sequence
            num_scenes=1000,  # synthetic
            frames_per_scene=24,
            height=384,
            width=512,
            seed=0,
            trajectories=(),  # synthetic: the camera paths scenes draw from (synthetic.TRAJECTORIES); () = all
        )
    )
    # Weighted mixing of several sources (upstream's composed dataset): name -> the fields of ``source`` plus
    # weight, num_frames and aspect_ratios. Fill it with ``add_source``; empty = ``source`` alone. Each step draws
    # one source by weight (the same on every process) and its S and H from that source's ranges.
    c.mix = ml_collections.ConfigDict()
    if variant == "tiny":
        c.img_size = 112
        c.aspect_ratios = (0.75, 1.0)
        c.num_frames = (2, 4)
        c.frame_buckets = (2, 4)
        c.max_images_per_batch = 8
        c.num_tracks = 64
        c.source.update(num_scenes=64, frames_per_scene=8, height=120, width=160)
    elif variant != "default":
        raise ValueError(f"unknown data config variant {variant!r}; use 'default' or 'tiny'")
    return c


def add_source(config, name: str, weight: float = 1.0, num_frames=None, aspect_ratios=None, **source) -> None:
    """Add a source to ``config.mix``: ``source`` overrides ``config.source``'s fields (kind, path, ...);
    ``num_frames`` / ``aspect_ratios`` default to the config's (taken now, not linked)."""
    entry = ml_collections.ConfigDict(config.source.to_dict())
    unknown = sorted(set(source) - set(entry))
    if unknown:
        raise ValueError(f"unknown source field(s) {unknown} for mix entry {name!r}; fields: {sorted(entry)}")
    entry.update(source)
    entry.weight = float(weight)
    entry.num_frames = tuple(num_frames or config.num_frames)
    entry.aspect_ratios = tuple(aspect_ratios or config.aspect_ratios)
    config.mix[name] = entry


def plan_configs(config) -> list[tuple[str, float, object, object]]:
    """``(name, weight, source config, plan config)`` per source: the plan config is ``config`` with the source's
    num_frames and aspect_ratios. Without a mix: ``config.source`` with weight 1 and ``config`` itself."""
    if not config.mix:
        return [("source", 1.0, config.source, config)]
    out = []
    for name in sorted(config.mix):
        entry = config.mix[name]
        plan = ml_collections.ConfigDict(config.to_dict())
        plan.num_frames, plan.aspect_ratios = tuple(entry.num_frames), tuple(entry.aspect_ratios)
        out.append((name, float(entry.weight), entry, plan))
    return out


def image_heights(config) -> list[int]:
    """The image heights of ``config.aspect_ratios``: ``floor(img_size * ratio / patch) * patch``, unique."""
    patch = config.patch_size
    return sorted({max(patch, math.floor(config.img_size * r / patch) * patch) for r in config.aspect_ratios})


def frame_counts(config) -> list[int]:
    """The frame counts (per sample, after padding) batches can have."""
    lo, hi = config.num_frames
    if not config.pad_to_bucket:
        return [b for b in sorted(config.frame_buckets) if lo <= b <= hi]
    return sorted({min(b for b in config.frame_buckets if b >= s) for s in range(lo, hi + 1)})


def batch_size(config, num_frames: int) -> int:
    """Samples per batch for padded frame count ``num_frames``, from the per-process image budget."""
    m = config.batch_multiple
    return max(m, (config.max_images_per_batch // num_frames) // m * m)


def batch_shapes(config) -> list[tuple[int, int, int, int]]:
    """Every ``(B, S, H, W)`` a batch can have (over all mixed sources): what the trainer compiles (at most one
    program per shape)."""
    shapes = set()
    for _, _, _, plan in plan_configs(config):
        shapes.update(
            (batch_size(plan, s), s, h, plan.img_size) for s in frame_counts(plan) for h in image_heights(plan)
        )
    return sorted(shapes, key=lambda shape: (shape[1], shape[2]))


def validate(config) -> None:
    """Raise ValueError naming the field for settings the pipeline cannot honour."""
    for name, weight, source, plan in plan_configs(config):
        where = f"data.mix.{name}" if config.mix else "data"
        if weight <= 0:
            raise ValueError(f"{where}.weight must be > 0, got {weight}")
        if source.kind not in SOURCE_KINDS:
            field = f"{where}.kind" if config.mix else "data.source.kind"
            raise ValueError(f"{field} must be one of {SOURCE_KINDS}, got {source.kind!r}")
        try:
            _validate_plan(plan)
        except ValueError as e:
            raise ValueError(f"{where}: {e}" if config.mix else str(e)) from None
    if config.on_bad_frame not in ("skip", "raise"):
        raise ValueError(f"data.on_bad_frame must be 'skip' or 'raise', got {config.on_bad_frame!r}")
    if config.frame_sampling not in ("random", "nearby"):
        raise ValueError(f"data.frame_sampling must be 'random' or 'nearby', got {config.frame_sampling!r}")
    _validate_augs(config.augs)


def _validate_plan(config) -> None:
    lo, hi = config.num_frames
    if not 1 <= lo <= hi:
        raise ValueError(f"data.num_frames must be (min, max) with 1 <= min <= max, got {tuple(config.num_frames)}")
    if config.img_size % config.patch_size:
        raise ValueError(f"data.img_size={config.img_size} must be a multiple of patch_size={config.patch_size}")
    if not config.aspect_ratios or not all(0 < r <= 1 for r in config.aspect_ratios):
        raise ValueError(f"data.aspect_ratios must be in (0, 1], got {tuple(config.aspect_ratios)}")
    if config.pad_to_bucket and (not config.frame_buckets or max(config.frame_buckets) < hi):
        raise ValueError(f"data.frame_buckets {tuple(config.frame_buckets)} must reach num_frames max {hi}")
    if not frame_counts(config):
        raise ValueError(f"no data.frame_buckets {tuple(config.frame_buckets)} inside num_frames {(lo, hi)}")


def _validate_augs(augs) -> None:
    for key in ("p", "gray_p", "exposure_p", "blur_p", "distortion_p"):
        if not 0 <= augs[key] <= 1:
            raise ValueError(f"data.augs.{key} is a probability in [0, 1], got {augs[key]}")
    for key in ("exposure_stops", "exposure_gamma", "blur_length", "k1", "k2"):
        lo, hi = augs[key]
        if lo > hi:
            raise ValueError(f"data.augs.{key} must be (low, high) with low <= high, got {tuple(augs[key])}")
    if min(augs.exposure_gamma) <= 0 or augs.blur_length[0] < 1:
        raise ValueError("data.augs.exposure_gamma must be > 0 and data.augs.blur_length >= 1 px")
    if not 0 <= augs.pp_shift < 0.5:
        raise ValueError(f"data.augs.pp_shift is a fraction of the image size in [0, 0.5), got {augs.pp_shift}")
