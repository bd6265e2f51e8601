"""Frame-sharded inference: a scene's frames split over the devices of a mesh axis, so N devices hold N times the
frames.

Each device runs the model on its own frames (``shard_map``): DINOv2, frame attention, the MLPs and the dense heads
see local frames only; global attention gathers every device's keys and values (one layer's at a time), and the
camera head and the tracker, which mix frames over a few small tensors, run on the gathered inputs
(``vggt_jax.model.frame_parallel``). Parameters are replicated. The outputs are those of single-device inference up
to float round-off, with the frame axis sharded.

    mesh = frame_mesh()                               # every local device on one "frames" axis
    forward = frame_sharded_apply(VGGT(config), mesh)
    out = forward(params, images, query_points)        # images [B, S, 3, H, W], any S

or ``FrameShardedPredictor.from_checkpoint(...)``, the ``Predictor`` with this forward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from vggt_jax.config import VGGTConfig
from vggt_jax.inference.outputs import FRAME_DIM, SCENE_OUTPUTS
from vggt_jax.inference.predictor import Predictor
from vggt_jax.model.attention import target_platform
from vggt_jax.model.frame_parallel import frame_axis_scope
from vggt_jax.model.vggt import VGGT

FRAME_AXIS = "frames"


def frame_mesh(devices: Sequence[jax.Device] | None = None, axis_name: str = FRAME_AXIS) -> Mesh:
    """A 1-D mesh over ``devices`` (default: all) whose one axis splits frames."""
    devices = list(jax.devices() if devices is None else devices)
    # Auto: the compiler reshards inputs into shard_map and the outputs cut to S frames (S need not divide the
    # device count), which explicit sharding types would reject.
    return jax.make_mesh((len(devices),), (axis_name,), axis_types=(jax.sharding.AxisType.Auto,), devices=devices)


def output_names(config: VGGTConfig, with_queries: bool) -> list[str]:
    names = ["frame_descriptor"]
    if config.family == "vggt_omega":
        names += ["camera_and_register_tokens"]
        if config.text_head is not None:
            names += list(SCENE_OUTPUTS)
    if config.camera_head is not None:
        names += ["pose_enc", "pose_enc_list"]
    if config.depth_head is not None:
        names += ["depth", "depth_conf"]
    if config.point_head is not None:
        names += ["world_points", "world_points_conf"]
    if config.track_head is not None and with_queries:
        names += ["track", "track_list", "vis"] + (["conf"] if config.track_head.tracker.predict_conf else [])
    return names


def may_run_pallas(config: VGGTConfig) -> bool:
    """Whether the model traced now may run a Pallas kernel (splash: asked for, or ``auto`` on TPU)."""
    return config.attention == "splash" or (config.attention == "auto" and target_platform() == "tpu")


def _frame_spec(name: str, axis_name: str) -> P:
    if name in SCENE_OUTPUTS:  # [B, C] per shard, stacked over the shards on a new axis: shard 0's is taken
        return P(axis_name)
    return P(*([None] * FRAME_DIM[name]), axis_name)


def frame_sharded_apply(
    model: VGGT, mesh: Mesh, axis_name: str = FRAME_AXIS, kv_exchange: str = "gather"
) -> Callable[..., dict[str, jax.Array]]:
    """A jitted ``fn(params, images, query_points=None, frame_mask=None, point_mask=None)`` with the contract of
    ``VGGT.__call__`` (batched inputs: ``images [B, S, 3, H, W]``, ``query_points [B, N, 2]``), run with the frames
    split over ``mesh``'s ``axis_name``.

    S need not divide the device count: the frames are padded with copies of the last one, masked out of every
    attention (as shape buckets are) and cut from the outputs. ``kv_exchange``: "gather" or "ring"
    (``vggt_jax.model.frame_parallel``): the ring holds 2/N of a global layer's keys and values instead of all.
    """
    n = mesh.shape[axis_name]
    frames = P(None, axis_name)

    def local(params, images, query_points, frame_mask, point_mask):
        with frame_axis_scope(axis_name, kv_exchange):
            out = model.apply(params, images, query_points, frame_mask, point_mask)
        return {k: v[None] if k in SCENE_OUTPUTS else v for k, v in out.items()}

    @jax.jit
    def forward(params, images, query_points=None, frame_mask=None, point_mask=None):
        b, s = images.shape[:2]
        s_pad = -(-s // n) * n
        if s_pad != s:
            images = jnp.concatenate([images, jnp.repeat(images[:, -1:], s_pad - s, axis=1)], axis=1)
            real = jnp.ones((b, s), bool) if frame_mask is None else frame_mask.astype(bool)
            frame_mask = jnp.pad(real, ((0, 0), (0, s_pad - s)))
        names = output_names(model.config, query_points is not None)
        in_specs = (P(), frames, P(), frames, P())
        out_specs = {name: _frame_spec(name, axis_name) for name in names}
        # Pallas kernels (splash on TPU) declare their outputs without varying-axes types, which check_vma rejects.
        run = jax.shard_map(
            local, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=not may_run_pallas(model.config)
        )
        out = run(params, images, query_points, frame_mask, point_mask)
        out = {k: v[0] if k in SCENE_OUTPUTS else v for k, v in out.items()}
        if s_pad == s:
            return out
        return {
            k: v if k in SCENE_OUTPUTS else jax.lax.slice_in_dim(v, 0, s, axis=FRAME_DIM[k]) for k, v in out.items()
        }

    return forward


class FrameShardedPredictor(Predictor):
    """``Predictor`` whose forward splits the frames over ``mesh`` (default: every local device); parameters are
    replicated on the mesh. Same inputs and ``Predictions``."""

    def __init__(
        self, config: VGGTConfig, params: dict, *, mesh: Mesh | None = None, kv_exchange: str = "gather", **kwargs
    ):
        super().__init__(config, params, **kwargs)
        self.mesh = mesh or frame_mesh()
        self.params = jax.device_put(params, NamedSharding(self.mesh, P()))
        self._forward = frame_sharded_apply(self.model, self.mesh, self.mesh.axis_names[0], kv_exchange)

    def __call__(self, images, query_points=None, metas=None, *, keep_track_features: bool = False):
        if keep_track_features:
            raise ValueError(
                "the frame-sharded predictor does not keep the track features (they stay on their shards); run the "
                "bundle adjustment's tracking with a Predictor"
            )
        return super().__call__(images, query_points, metas)
