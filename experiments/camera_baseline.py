"""Controls for the camera criterion: can a simpler learner learn relative rotation from these batches in this budget?

Trains a small model to predict the rotation of frames 1..S-1 in camera 0's frame, on the batches ``train.py`` would
read for the same config, and prints the median rotation error on the held-out scenes next to an image-blind answer:
for each frame index, the mean held-out rotation (about what a head that ignores the images converges to; fitted on
the held-out scenes themselves, so optimistic). Learners (``--learner``):

* ``cnn``: a small CNN that sees all S frames stacked as channels (early fusion: frames meet in its first layer);
* ``transformer``: a generic pre-LN ViT over 14-pixel patch tokens of all frames at once, with learnt position and
  frame embeddings (frames meet only in attention between patch tokens, as in VGGT).

If a learner ends far below the image-blind line, the data and targets carry relative pose it can learn. Compare
VGGT's ``eval/camera_rot_err_median`` from ``train.py`` with the same overrides; with two frames all are over the
same pairs (VGGT's is over every pair i < j, this one over the pairs (0, j)).

    python experiments/camera_baseline.py --config configs/train_synthetic.py \\
        --config.data.source.trajectories="('pan',)" --steps 2000

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
    """``[B, S, H, W, 3]`` images -> ``[B, S - 1, outputs]``: by default quaternions (xyzw, unnormalised) of frames
    1..S-1."""

    outputs: int = 4

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        b, s, h, w, c = images.shape
        x = jnp.moveaxis(images, 1, 3).reshape(b, h, w, s * c)
        for features in (32, 64, 128, 128):
            x = nn.relu(nn.Conv(features, (3, 3), strides=2)(x))
        x = nn.relu(nn.Dense(256)(x.reshape(b, -1)))
        return nn.Dense((s - 1) * self.outputs)(x).reshape(b, s - 1, self.outputs)


class PatchTransformer(nn.Module):
    """``[B, S, H, W, 3]`` images -> ``[B, S - 1, outputs]`` from a class token: 14-pixel patch tokens with learnt
    position and frame embeddings, ``depth`` pre-LN blocks over all frames' tokens together."""

    outputs: int = 4
    width: int = 64
    depth: int = 2
    heads: int = 4
    patch: int = 14

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        b, s, h, w, c = images.shape
        p = self.patch
        x = images.reshape(b, s, h // p, p, w // p, p, c).transpose(0, 1, 2, 4, 3, 5, 6)
        x = nn.Dense(self.width)(x.reshape(b, s, -1, p * p * c))
        x = x + self.param("pos_embed", nn.initializers.normal(0.02), (1, 1, x.shape[2], self.width))
        x = x + self.param("frame_embed", nn.initializers.normal(0.02), (1, s, 1, self.width))
        cls = self.param("cls_token", nn.initializers.normal(0.02), (1, 1, self.width))
        x = jnp.concatenate([jnp.broadcast_to(cls, (b, 1, self.width)), x.reshape(b, -1, self.width)], 1)
        for _ in range(self.depth):
            x = x + nn.MultiHeadDotProductAttention(self.heads)(nn.LayerNorm()(x))
            x = x + nn.Dense(self.width)(nn.gelu(nn.Dense(4 * self.width)(nn.LayerNorm()(x))))
        x = nn.Dense((s - 1) * self.outputs)(nn.LayerNorm()(x[:, 0]))
        return x.reshape(b, s - 1, self.outputs)


LEARNERS = {"cnn": StackedFramesCNN, "transformer": PatchTransformer}


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


def run(
    config, steps: int, eval_every: int, lr: float = 1e-3, seed: int = 0, learner: str = "cnn", log=print
) -> list[dict]:
    """Train ``learner`` for ``steps``; every ``eval_every`` steps (and at the end) log and record the held-out median
    errors: rows ``{step, seconds, error, constant}`` (degrees; ``constant`` is the image-blind answer's)."""
    if learner not in LEARNERS:
        raise ValueError(f"unknown learner {learner!r}; use one of {sorted(LEARNERS)}")
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

    model, tx = LEARNERS[learner](), optax.adamw(lr)
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
            error = float(np.median(np.concatenate([np.asarray(errors(params, b)) for b in held_out])))
            rows.append(dict(step=step, seconds=time.time() - start, error=error, constant=constant))
            seconds = rows[-1]["seconds"]
            log(f"step {step:6d}  {seconds:6.0f} s  {learner} {error:6.2f} deg  mean rotation {constant:6.2f} deg")
        if step < steps:
            params, opt_state, _ = train_step(params, opt_state, next(train_it))
    return rows


def main(argv):
    del argv
    f = flags.FLAGS
    rows = run(f.config, f.steps, f.eval_every, f.lr, learner=f.learner)
    print(f"\n| step | seconds | {f.learner} median rotation error (deg) | mean held-out rotation (deg) |")
    print("| ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['step']} | {r['seconds']:.0f} | {r['error']:.2f} | {r['constant']:.2f} |")


if __name__ == "__main__":  # flags defined here only, so experiments/shift_probe.py can import the learners
    config_flags.DEFINE_config_file("config", None, "training config (as for train.py)", lock_config=True)
    flags.DEFINE_integer("steps", 2000, "training steps")
    flags.DEFINE_integer("eval_every", 250, "steps between evaluations")
    flags.DEFINE_float("lr", 1e-3, "AdamW learning rate")
    flags.DEFINE_enum("learner", "cnn", sorted(LEARNERS), "the control model")
    flags.mark_flags_as_required(["config"])
    app.run(main)
