"""A control for the camera criterion: can anything learn relative rotation from these batches in this budget?

Trains a small CNN that sees all S frames of a scene stacked as channels (early fusion) to predict the rotation of
frames 1..S-1 in camera 0's frame, on the batches ``train.py`` would read for the same config, and prints the
median rotation error on the held-out scenes next to an image-blind answer: for each frame index, the mean
held-out rotation (about what a head that ignores the images converges to; fitted on the held-out scenes
themselves, so optimistic). If the CNN ends far below that line, the data and targets carry learnable relative
pose. Compare VGGT's ``eval/camera_rot_err_median`` from ``train.py`` with the same overrides; with two frames
both are over the same pairs (VGGT's is over every pair i < j, this one over the pairs (0, j)).

    python scripts/camera_baseline.py --config configs/train_synthetic.py:model=micro,frames=2,batch=8 \\
        --config.data.source.trajectories="('pan',)" --config.data.source.frames_per_scene=2 --steps 2000

The loss is L1 on the quaternion (the camera loss's rotation term); translation and field of view are not used.
"""

from __future__ import annotations

import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags
from ml_collections import config_flags

from vggt_jax.geometry import extri_intri_to_pose_encoding, standardize_quaternion
from vggt_jax.train import loop
from vggt_jax.train import sharding as sh


class StackedFramesCNN(nn.Module):
    """``[B, S, H, W, 3]`` images -> ``[B, S - 1, 4]`` quaternions (xyzw, unnormalised) of frames 1..S-1."""

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        b, s, h, w, c = images.shape
        x = jnp.moveaxis(images, 1, 3).reshape(b, h, w, s * c)
        for features in (32, 64, 128, 128):
            x = nn.relu(nn.Conv(features, (3, 3), strides=2)(x))
        x = nn.relu(nn.Dense(256)(x.reshape(b, -1)))
        return nn.Dense((s - 1) * 4)(x).reshape(b, s - 1, 4)


def target_quaternions(batch) -> jax.Array:
    """Ground-truth quaternions ``[B, S - 1, 4]`` of frames 1..S-1 (the batch is camera-0-relative)."""
    enc = extri_intri_to_pose_encoding(batch["extrinsics"], batch["intrinsics"], batch["images"].shape[2:4], xnp=jnp)
    return enc[:, 1:, 3:7]


def rotation_error_deg(pred: jax.Array, gt: jax.Array) -> jax.Array:
    """Angle in degrees between the rotations of quaternions ``pred`` (any norm) and ``gt`` (unit)."""
    pred = pred / jnp.linalg.norm(pred, axis=-1, keepdims=True)
    return jnp.degrees(2 * jnp.arccos(jnp.clip(jnp.abs(jnp.sum(pred * gt, -1)), 0.0, 1.0)))


def mean_rotation(quats: np.ndarray) -> np.ndarray:
    """Per frame index, the normalised mean of ``quats [N, S - 1, 4]`` taken with w >= 0 (one sign per rotation)."""
    q = standardize_quaternion(quats).mean(0)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def run(config, steps: int, eval_every: int, lr: float = 1e-3, seed: int = 0, log=print) -> list[dict]:
    """Train for ``steps``; every ``eval_every`` steps (and at the end) log and record the held-out median errors."""
    shapes = (config.data.num_frames, config.data.frame_buckets, config.eval.data.num_frames)
    shapes += (config.eval.data.frame_buckets,)
    if len({f for x in shapes for f in x}) != 1:
        raise ValueError(
            "needs one frame count and no padded frames in training and evaluation, got (data.num_frames, "
            f"data.frame_buckets, eval.data.num_frames, eval.data.frame_buckets) = {shapes}; set the config's frames "
            "argument (configs/train_synthetic.py:frames=N) and leave the buckets alone"
        )
    mesh = sh.make_mesh(**config.mesh)
    train_it = loop.make_iterator(config, mesh)
    eval_it = loop.make_iterator(config, mesh, eval_mode=True)
    held_out = [next(eval_it) for _ in range(config.eval.num_batches)]
    gt = np.concatenate([np.asarray(target_quaternions(b)) for b in held_out])
    constant = float(np.median(rotation_error_deg(jnp.broadcast_to(mean_rotation(gt), gt.shape), gt)))

    model, tx = StackedFramesCNN(), optax.adamw(lr)
    params = model.init(jax.random.PRNGKey(seed), jnp.asarray(held_out[0]["images"][:1]))
    opt_state = tx.init(params)

    @jax.jit
    def train_step(params, opt_state, batch):
        def loss_fn(p):
            return jnp.mean(jnp.abs(model.apply(p, batch["images"]) - target_quaternions(batch)))

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    @jax.jit
    def errors(params, batch):
        return rotation_error_deg(model.apply(params, batch["images"]), target_quaternions(batch))

    rows, start = [], time.time()
    for step in range(steps + 1):
        if step % eval_every == 0 or step == steps:
            cnn = float(np.median(np.concatenate([np.asarray(errors(params, b)) for b in held_out])))
            rows.append(dict(step=step, seconds=time.time() - start, cnn=cnn, constant=constant))
            log(f"step {step:6d}  {rows[-1]['seconds']:6.0f} s  CNN {cnn:6.2f} deg  mean rotation {constant:6.2f} deg")
        if step < steps:
            params, opt_state, _ = train_step(params, opt_state, next(train_it))
    return rows


_CONFIG = config_flags.DEFINE_config_file("config", None, "training config (as for train.py)", lock_config=True)
_STEPS = flags.DEFINE_integer("steps", 2000, "training steps")
_EVAL_EVERY = flags.DEFINE_integer("eval_every", 250, "steps between evaluations")
_LR = flags.DEFINE_float("lr", 1e-3, "AdamW learning rate")
flags.mark_flags_as_required(["config"])


def main(argv):
    del argv
    rows = run(_CONFIG.value, _STEPS.value, _EVAL_EVERY.value, _LR.value)
    print("\n| step | seconds | CNN median rotation error (deg) | mean held-out rotation (deg) |")
    print("| ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['step']} | {r['seconds']:.0f} | {r['cnn']:.2f} | {r['constant']:.2f} |")


if __name__ == "__main__":
    app.run(main)
