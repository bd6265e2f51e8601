"""The jitted predictor: a checkpoint in, numpy predictions out.

``Predictor.from_checkpoint(...)`` accepts an orbax checkpoint directory, an official ``.safetensors`` / ``.pt``
file (converted once and cached as an orbax checkpoint) or a Hugging Face Hub id. ``predictor(images,
query_points)`` pads the frame count and the query count up to a bucket (``FRAME_BUCKETS``, ``QUERY_BUCKETS``)
with masks, so the outputs of the real frames are unchanged (``VGGT.__call__``) and a new frame count inside a
bucket reuses the compiled program; compiled programs also persist across processes (``enable_compilation_cache``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

from vggt_jax.config import VGGTConfig, get_config
from vggt_jax.convert.checkpoint import is_checkpoint, load_checkpoint, save_checkpoint
from vggt_jax.convert.convert import convert_state_dict, detect_config
from vggt_jax.geometry.cameras import depth_to_world_points
from vggt_jax.geometry.pose_enc import pose_encoding_to_extri_intri
from vggt_jax.inference.outputs import FRAME_BUCKETS, scene_outputs
from vggt_jax.inference.preprocess import ImageMeta
from vggt_jax.model.vggt import VGGT, track_features, track_from_features

QUERY_BUCKETS = tuple(2**k for k in range(4, 17))


def cache_root() -> Path:
    """``$VGGT_JAX_CACHE`` or ``~/.cache/vggt_jax``: converted checkpoints and compiled programs."""
    return Path(os.environ.get("VGGT_JAX_CACHE", Path.home() / ".cache" / "vggt_jax")).expanduser()


def enable_compilation_cache(directory: str | os.PathLike | None = None) -> None:
    """Persist compiled XLA programs (the 1B forward takes tens of seconds to compile) unless the user set a cache
    directory of their own."""
    if jax.config.jax_compilation_cache_dir is None:
        jax.config.update("jax_compilation_cache_dir", os.fspath(directory or cache_root() / "xla"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def bucket(n: int, buckets: Sequence[int]) -> int:
    """Smallest bucket >= n (n itself beyond the largest)."""
    return next((b for b in buckets if b >= n), n)


def default_dtype() -> str:
    """float32 on CPU; bfloat16 on accelerators, as the official demos run under autocast."""
    return "float32" if jax.default_backend() == "cpu" else "bfloat16"


@dataclasses.dataclass
class Predictions:
    """One scene's predictions, numpy, without a batch axis. Pixel coordinates are (x, y) of the model input
    (``images``) unless named ``*_original``; cameras are camera-from-world, OpenCV axes, in the frame of camera 0.

    Attributes:
      images: [S, 3, H, W] model input in [0, 1].
      pose_enc: [S, 9]; pose_enc_list: [iterations, S, 9].
      extrinsic: [S, 3, 4]; intrinsic: [S, 3, 3] for the model input.
      depth, depth_conf: [S, H, W].
      world_points, world_points_conf: [S, H, W, 3] and [S, H, W] from the point head (None for VGGT-Omega, which
        has none: its points are ``world_points_from_depth``).
      world_points_from_depth: [S, H, W, 3], depth unprojected with the predicted cameras (usually the more
        accurate point cloud, as the paper notes).
      track, track_list, vis, conf: [S, N, 2], [iterations, S, N, 2], [S, N], [S, N] when queries were given.
      metas: per-image ``ImageMeta`` when the images came from ``preprocess``; then ``intrinsic_original`` [S, 3, 3]
        and ``track_original`` [S, N, 2] are in each original image's pixels.
      track_features: with ``predictor(..., keep_track_features=True)``, the track head's feature maps of every
        frame (on the device), for ``Predictor.track``.
      camera_and_register_tokens: VGGT-Omega's [S, R, 2C] last-layer camera and register tokens (frame descriptors);
        text_alignment_embedding: [2C], unit norm, with Omega's text head.
      frame_descriptor: [S, 2C] unit-norm pooled last-layer patch tokens (loop detection in ``reconstruct.windows``).
    """

    images: np.ndarray
    pose_enc: np.ndarray
    pose_enc_list: np.ndarray
    extrinsic: np.ndarray
    intrinsic: np.ndarray
    depth: np.ndarray
    depth_conf: np.ndarray
    world_points: np.ndarray | None
    world_points_conf: np.ndarray | None
    world_points_from_depth: np.ndarray
    track: np.ndarray | None = None
    track_list: np.ndarray | None = None
    vis: np.ndarray | None = None
    conf: np.ndarray | None = None
    metas: list[ImageMeta] | None = None
    intrinsic_original: np.ndarray | None = None
    track_original: np.ndarray | None = None
    track_features: TrackFeatures | None = None
    camera_and_register_tokens: np.ndarray | None = None
    frame_descriptor: np.ndarray | None = None
    text_alignment_embedding: np.ndarray | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array field that is set (for ``np.savez``)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), np.ndarray)
        }


@dataclasses.dataclass(frozen=True)
class TrackFeatures:
    """The track head's feature maps of one forward, padded to its frame bucket: ``fmaps [1, S_pad, H/2, W/2, C]``
    and ``frame_mask [1, S_pad]``."""

    fmaps: jax.Array
    frame_mask: jax.Array


class Predictor:
    def __init__(
        self,
        config: VGGTConfig,
        params: dict,
        *,
        frame_buckets: Sequence[int] = FRAME_BUCKETS,
        query_buckets: Sequence[int] = QUERY_BUCKETS,
        compilation_cache: bool = True,
    ):
        if compilation_cache:
            enable_compilation_cache()
        self.config = config
        self.params = params
        self.frame_buckets = tuple(frame_buckets)
        self.query_buckets = tuple(query_buckets)
        self.model = VGGT(config)
        self._forward = jax.jit(self.model.apply, static_argnames=("track_tokens",))
        self._track_features = jax.jit(functools.partial(track_features, config), static_argnames=("image_hw",))
        self._track = jax.jit(functools.partial(track_from_features, config))

    @classmethod
    def from_checkpoint(
        cls,
        source: str | os.PathLike,
        *,
        dtype: str | None = None,
        config: str | VGGTConfig | None = None,
        cache_dir: str | os.PathLike | None = None,
        scan_layers: bool | None = None,
        **kwargs,
    ) -> Predictor:
        """``source``: an orbax checkpoint directory (``python -m vggt_jax.convert``), an official ``.safetensors``
        / ``.pt`` file, or a Hub id such as ``facebook/VGGT-1B`` or ``facebook/VGGT-Omega`` (``repo:filename`` picks
        a file). ``dtype``: compute dtype (default float32 on CPU, bfloat16 on accelerators); ``config``: the variant
        of a raw state dict (default: told from its keys, VGGT-1B or VGGT-Omega; an orbax checkpoint names its own,
        model family included).
        ``scan_layers``: run the transformer blocks under ``nn.scan`` (compiles faster, same outputs) or unrolled;
        default: the checkpoint's layout (``config``'s for a raw state dict).
        """
        path = resolve_checkpoint(source, config, cache_dir)
        ckpt_config, params = load_checkpoint(
            path, dtype="float32" if dtype != "float64" else "float64", scan_layers=scan_layers
        )
        compute = dtype or default_dtype()
        ckpt_config = ckpt_config.replace(dtype=compute, head_dtype="float64" if compute == "float64" else "float32")
        return cls(ckpt_config, params, **kwargs)

    def __call__(
        self,
        images: np.ndarray,
        query_points: np.ndarray | None = None,
        metas: Sequence[ImageMeta] | None = None,
        *,
        keep_track_features: bool = False,
    ) -> Predictions:
        """``images``: [S, 3, H, W] float in [0, 1] (``preprocess.load_and_preprocess_images``); ``query_points``:
        [N, 2] pixel (x, y) in frame 0 of ``images``; ``metas``: the preprocessing's ``ImageMeta`` list, to express
        cameras and tracks in the original images' pixels too. ``keep_track_features``: keep the track head's
        feature maps on the device (``Predictions.track_features``) for ``track``."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [S, 3, H, W], got {images.shape}")
        s, _, height, width = images.shape
        p = self.config.patch_size
        if height % p or width % p:
            raise ValueError(f"image size {height}x{width} is not a multiple of {p}; preprocess the images first")
        dtype = np.float64 if self.config.dtype == "float64" else np.float32
        s_pad = bucket(s, self.frame_buckets)
        padded = np.concatenate([images, np.repeat(images[-1:], s_pad - s, axis=0)]).astype(dtype)
        frame_mask = (np.arange(s_pad) < s)[None]
        queries = point_mask = None
        if query_points is not None and self.config.track_head is not None:
            query_points = np.asarray(query_points, np.float64).reshape(-1, 2)
            queries, point_mask = pad_queries(query_points, bucket(len(query_points), self.query_buckets), dtype)
        keep = keep_track_features and self.config.track_head is not None
        extra = {"track_tokens": True} if keep else {}
        out = self._forward(self.params, padded[None], queries, frame_mask, point_mask, **extra)
        tokens = out.pop("track_tokens", None)
        n = None if query_points is None else len(query_points)
        pred = predictions_from_outputs(scene_outputs(out, s, n), images, metas)
        if tokens is not None:
            # One feature pass per frame serves every query frame and chunk that ``track`` runs later.
            fmaps = self._track_features(self.params, tokens, (height, width))
            pred.track_features = TrackFeatures(fmaps, frame_mask)
        return pred

    def track(
        self, features: TrackFeatures, query_frame: int, query_points: np.ndarray, chunk: int = 256
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Track ``query_points [N, 2]`` (model-input pixels of frame ``query_frame``) through every frame with the
        tracker alone, on the feature maps of an earlier forward (``keep_track_features``), with the frames
        reordered so ``query_frame`` comes first. Queries go ``chunk`` at a time (padded, masked), so any N runs one
        compiled program; the tracker attends across the tracks of a chunk, so a track depends a little on which
        queries share its chunk. Returns ``track [S, N, 2]``, ``vis [S, N]``, ``conf [S, N]`` in the original
        frame order."""
        if self.config.track_head is None:
            raise ValueError("this checkpoint's model has no track head")
        s_pad = features.frame_mask.shape[1]
        s = int(np.sum(np.asarray(features.frame_mask)))
        if not 0 <= query_frame < s:
            raise ValueError(f"query_frame {query_frame} is not one of the {s} frames")
        order = np.array([query_frame] + [i for i in range(s_pad) if i != query_frame])
        fmaps, frame_mask = features.fmaps[:, order], features.frame_mask[:, order]
        dtype = np.float64 if self.config.dtype == "float64" else np.float32
        query_points = np.asarray(query_points, np.float64).reshape(-1, 2)
        parts: dict[str, list[np.ndarray]] = {}
        for begin in range(0, len(query_points), chunk):
            piece = query_points[begin : begin + chunk]
            queries, point_mask = pad_queries(piece, chunk, dtype)
            out = self._track(self.params, fmaps, queries, frame_mask, point_mask)
            for key, value in out.items():
                parts.setdefault(key, []).append(np.asarray(value)[0, :, : len(piece)])
        inverse = np.argsort(order)[:s]
        result = {k: np.concatenate(v, axis=1)[inverse] for k, v in parts.items()}
        return result["track"], result["vis"], result.get("conf")


def predictions_from_outputs(
    out: dict[str, np.ndarray], images: np.ndarray, metas: Sequence[ImageMeta] | None = None
) -> Predictions:
    """``Predictions`` of one scene's model outputs (``outputs.scene_outputs``: no batch axis, padding cut), the
    cameras decoded and the depth unprojected; with ``metas``, cameras and tracks in the original images' pixels."""
    s, _, height, width = images.shape
    pose_enc = out["pose_enc"].astype(np.float64)
    # A FoV of exactly 0 (the head's ReLU, seen with untrained weights) gives an infinite focal length.
    with np.errstate(divide="ignore"):
        extrinsic, intrinsic = pose_encoding_to_extri_intri(pose_enc, (height, width), float32_intrinsics=False)
    depth = out["depth"][..., 0]
    with np.errstate(invalid="ignore"):
        world_points_from_depth = depth_to_world_points(depth.astype(np.float64), extrinsic, intrinsic)
    pred = Predictions(
        images=images,
        pose_enc=out["pose_enc"],
        pose_enc_list=out["pose_enc_list"],
        extrinsic=extrinsic,
        intrinsic=intrinsic,
        depth=depth,
        depth_conf=out["depth_conf"],
        world_points=out.get("world_points"),
        world_points_conf=out.get("world_points_conf"),
        world_points_from_depth=world_points_from_depth.astype(np.float32),
        frame_descriptor=out.get("frame_descriptor"),
        camera_and_register_tokens=out.get("camera_and_register_tokens"),
        text_alignment_embedding=out.get("text_alignment_embedding"),
    )
    if "track" in out:
        pred.track, pred.track_list, pred.vis = out["track"], out["track_list"], out["vis"]
        pred.conf = out.get("conf")
    if metas is not None:
        if len(metas) != s:
            raise ValueError(f"{len(metas)} image metas for {s} images")
        pred.metas = list(metas)
        pred.intrinsic_original = np.stack([m.intrinsics_to_original(k) for m, k in zip(metas, intrinsic, strict=True)])
        if pred.track is not None:
            pred.track_original = np.stack(
                [m.points_to_original(t) for m, t in zip(metas, pred.track, strict=True)]
            ).astype(np.float32)
    return pred


def pad_queries(query_points: np.ndarray, size: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """``[N, 2]`` queries padded to ``[1, size, 2]`` (copies of the first) and their ``point_mask [1, size]``."""
    n = len(query_points)
    padded = np.concatenate([query_points, np.repeat(query_points[:1], size - n, axis=0)])[None].astype(dtype)
    return padded, (np.arange(size) < n)[None]


def is_hub_id(text: str) -> bool:
    """``owner/name`` or ``owner/name:filename`` that is not a local path."""
    repo = text.split(":", 1)[0]
    return repo.count("/") == 1 and not text.startswith((".", "/", "~")) and not repo.endswith((".pt", ".safetensors"))


def resolve_checkpoint(
    source: str | os.PathLike, config: str | VGGTConfig | None = None, cache_dir: str | os.PathLike | None = None
) -> Path:
    """An orbax checkpoint directory for ``source``, converting (once, cached) a raw state dict or Hub download
    (``config``: its variant; default: told from its keys)."""
    path = Path(os.fspath(source)).expanduser()
    if path.is_dir():
        if not is_checkpoint(path):
            raise FileNotFoundError(
                f"{path} is a folder but not a vggt_jax checkpoint (no config.json + params/); pass an orbax "
                "checkpoint from `python -m vggt_jax.convert`, a model.safetensors/.pt file, or a Hub id"
            )
        return path
    if not path.exists():
        text = os.fspath(source)
        if is_hub_id(text):
            from vggt_jax.convert.hub import download

            path = Path(download(text))
        else:
            raise FileNotFoundError(
                f"checkpoint not found: {text}; pass an orbax checkpoint directory, a model.safetensors/.pt file or "
                "a Hugging Face Hub id such as facebook/VGGT-1B"
            )
    cfg = get_config(config) if isinstance(config, str) else config or detect_config(path)
    stat = path.resolve().stat()
    key = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{cfg.to_json()}".encode()).hexdigest()[:16]
    cached = Path(cache_dir or cache_root() / "checkpoints") / f"{path.stem}-{cfg.name}-{key}"
    if not is_checkpoint(cached):
        params = convert_state_dict(path, cfg.replace(param_dtype="float32"), "float32")
        save_checkpoint(cached, cfg.replace(param_dtype="float32"), params, overwrite=True)
        del params
    return cached
