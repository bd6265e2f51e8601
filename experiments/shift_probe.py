"""A probe under the camera criterion: which learners can tell which way frame 1 is shifted against frame 0?

Each sample is two frames cut from one canvas, frame 1 one patch (14 px) left or right of frame 0, so frame 1's
patch tokens are exact copies of frame 0's one column over. Content is either ``noise`` (4-pixel blocks of random
colour: the shift shows only by matching content across frames) or ``blob`` (one coloured Gaussian on black: the
shift shows in where the bright patches are). The probe trains a learner on fresh samples and prints the sign
accuracy on 256 held-out ones (chance: 0.5).

Learners: ``vggt`` (``--variant micro | tiny``, camera head only, trained with the training camera loss on the pose
of a camera turning by ``atan(14 px / f)``, 60-degree field of view); ``transformer`` and ``cnn``, the controls of
``camera_baseline.py`` (a generic ViT over the same 14-pixel patch tokens with frame embeddings; frames stacked as
channels), trained with a logistic loss on the sign. Tells a port bug from a property of the learner:

    python experiments/shift_probe.py --learner vggt --content blob --steps 6000
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags

from vggt_jax.config import get_config
from vggt_jax.model.vggt import VGGT
from vggt_jax.train.losses import compute_camera_loss

PATCH = 14
FOV_DEG = 60.0

_spec = importlib.util.spec_from_file_location("camera_baseline", Path(__file__).with_name("camera_baseline.py"))
camera_baseline = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)  # flax dataclasses look it up
_spec.loader.exec_module(camera_baseline)
LEARNERS = ("vggt", *camera_baseline.LEARNERS)


def make_pairs(rng: np.random.Generator, batch: int, size: int, content: str) -> tuple[np.ndarray, np.ndarray]:
    """-> images ``[B, 2, size, size, 3]`` in [0, 1] and the shift sign ``[B]`` (+1: frame 1 shows content one patch
    to the right of frame 0's, as after a camera turning right)."""
    width = size + 2 * PATCH
    if content == "noise":
        blocks = rng.random((batch, -(-size // 4), -(-width // 4), 3))
        canvas = np.repeat(np.repeat(blocks, 4, 1), 4, 2)[:, :size, :width]
    elif content == "blob":
        y, x = np.mgrid[0:size, 0:width]
        cy = rng.uniform(10, size - 10, (batch, 1, 1))
        cx = rng.uniform(PATCH + 10, width - PATCH - 10, (batch, 1, 1))
        blob = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * 8.0**2))
        canvas = blob[..., None] * rng.uniform(0.5, 1.0, (batch, 1, 1, 3))
    else:
        raise ValueError(f"unknown content {content!r}; use 'noise' or 'blob'")
    sign = rng.choice([-1, 1], batch)
    frame0 = canvas[:, :, PATCH : PATCH + size]
    frame1 = np.stack([c[:, PATCH * (1 + s) : PATCH * (1 + s) + size] for c, s in zip(canvas, sign, strict=True)])
    return np.stack([frame0, frame1], 1).astype(np.float32), sign


def target_pose_encoding(sign: np.ndarray, size: int) -> np.ndarray:
    """``[B, 2, 9]``: frame 0 at the identity, frame 1 turned about its y axis by ``sign * atan(PATCH / f)``; no
    translation, a ``FOV_DEG`` field of view. A right turn's camera-from-world rotation is about -y."""
    focal = 0.5 * size / np.tan(np.radians(FOV_DEG) / 2)
    half = sign * np.arctan(PATCH / focal) / 2
    enc = np.zeros((len(sign), 2, 9), np.float32)
    enc[..., 6] = 1.0  # qw of the identity
    enc[:, 1, 4], enc[:, 1, 6] = -np.sin(half), np.cos(half)
    enc[..., 7:] = np.radians(FOV_DEG)  # fov_h = fov_w for a square image
    return enc


def turn_sign(pose_encoding: jax.Array) -> jax.Array:
    """``[B, 2, 9]`` -> ``[B]``: +1 where frame 1's camera turned right about its y axis, -1 where left. Frame 1's
    camera-from-world quaternion (xyzw) of a right turn has y and w of opposite signs."""
    q = pose_encoding[:, 1, 3:7]
    return -jnp.sign(q[:, 1] * q[:, 3])


def make_learner(learner: str, variant: str, size: int):
    """-> (init(key, images), loss(params, images, sign), predicted sign(params, images))."""
    if learner == "vggt":
        model = VGGT(get_config(variant).replace(depth_head=None, point_head=None, track_head=None))

        def apply(params, images):
            return model.apply({"params": params}, jnp.moveaxis(images, -1, 2))

        right, left = target_pose_encoding(np.array([1, -1]), size)

        def loss(params, images, sign):
            gt = jnp.where(sign[:, None, None] > 0, right, left)
            masks = jnp.ones(images.shape[:2] + (size, size), bool)
            return compute_camera_loss(apply(params, images)["pose_enc_list"], gt, masks)["loss_camera"]

        def predict(params, images):
            return turn_sign(apply(params, images)["pose_enc"])

        return (lambda key, images: model.init(key, jnp.moveaxis(images, -1, 2))["params"]), loss, predict
    if learner in camera_baseline.LEARNERS:
        model = camera_baseline.LEARNERS[learner](outputs=1)
        logit = lambda params, images: model.apply(params, images)[:, 0, 0]  # noqa: E731

        def loss(params, images, sign):
            return jnp.mean(optax.sigmoid_binary_cross_entropy(logit(params, images), (sign + 1) / 2))

        return model.init, loss, lambda params, images: jnp.sign(logit(params, images))
    raise ValueError(f"unknown learner {learner!r}; use one of {LEARNERS}")


def run(learner, content, steps, eval_every, variant="micro", size=56, batch=8, lr=1e-3, seed=0, log=print):
    """Train on fresh pairs with Adam; -> rows ``{step, seconds, accuracy}`` (held-out sign accuracy)."""
    init, loss_fn, predict = make_learner(learner, variant, size)
    rng = np.random.default_rng(seed)
    held_out = [make_pairs(np.random.default_rng([seed, 1, i]), batch, size, content) for i in range(256 // batch)]
    params = init(jax.random.PRNGKey(seed), jnp.asarray(held_out[0][0]))
    tx = optax.adam(lr)
    opt_state = tx.init(params)

    @jax.jit
    def train_step(params, opt_state, images, sign):
        grads = jax.grad(loss_fn)(params, images, sign)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    predict = jax.jit(predict)
    rows, start = [], time.time()
    for step in range(steps + 1):
        if step % eval_every == 0 or step == steps:
            hits = [np.asarray(predict(params, jnp.asarray(x))) == s for x, s in held_out]
            rows.append(dict(step=step, seconds=time.time() - start, accuracy=float(np.mean(hits))))
            log(f"step {step:6d}  {rows[-1]['seconds']:6.0f} s  held-out sign accuracy {rows[-1]['accuracy']:.3f}")
        if step < steps:
            images, sign = make_pairs(rng, batch, size, content)
            params, opt_state = train_step(params, opt_state, jnp.asarray(images), jnp.asarray(sign))
    return rows


def main(argv):
    del argv
    f = flags.FLAGS
    rows = run(f.learner, f.content, f.steps, f.eval_every, f.variant, lr=f.lr)
    print(f"\n| step | seconds | held-out sign accuracy ({f.learner}, {f.content}) |\n| ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['step']} | {r['seconds']:.0f} | {r['accuracy']:.3f} |")


if __name__ == "__main__":  # flags defined here only, as in camera_baseline.py
    flags.DEFINE_enum("learner", "vggt", LEARNERS, "what learns")
    flags.DEFINE_enum("variant", "micro", ["micro", "tiny"], "VGGT variant (--learner vggt)")
    flags.DEFINE_enum("content", "noise", ["noise", "blob"], "what the frames show")
    flags.DEFINE_integer("steps", 3000, "training steps (8 fresh pairs each)")
    flags.DEFINE_integer("eval_every", 500, "steps between evaluations")
    flags.DEFINE_float("lr", 1e-3, "Adam learning rate")
    app.run(main)
