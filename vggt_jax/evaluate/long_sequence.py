"""A model-free long sequence for windowed inference (``vggt_jax.reconstruct.windows``): a 520-frame loop with
exact ground truth, each window's "prediction" the ground truth in the window's own first-camera frame under a random
Sim(3) plus known pose and depth noise, and a bound on the chained trajectory's ATE derived from that noise.

  python -m vggt_jax.evaluate.long_sequence --seeds 0-4      # the ATE table, loop closure off and on
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile

import numpy as np

from vggt_jax.evaluate.metrics import ate
from vggt_jax.geometry.alignment import transform_extrinsics
from vggt_jax.geometry.cameras import camera_centers, depth_to_world_points, look_at, pixel_grid
from vggt_jax.inference.predictor import Predictions
from vggt_jax.reconstruct.sim3 import sim3_exp
from vggt_jax.reconstruct.windows import WindowOptions, run_windows

WALL, RING, HEIGHT, WIDTH = 5.0, 2.0, 12, 16
SIGMA_ROT, SIGMA_T, SIGMA_DEPTH = 0.005, 0.002, 0.01  # radians, world units, relative


def loop_scene(num_frames: int):
    """Cameras on a ring of radius 2 (z = 1) looking outwards at a cylindrical wall of radius 5 and the floor, one
    full turn: the last frame sees what the first saw. Returns extrinsics, intrinsics, depth and the 'images'
    (a solid texture on the world points, what the descriptors are pooled from)."""
    phi = 2 * np.pi * np.arange(num_frames) / num_frames
    eyes = np.stack([RING * np.cos(phi), RING * np.sin(phi), np.ones_like(phi)], -1)
    targets = eyes + np.stack([np.cos(phi + 0.3), np.sin(phi + 0.3), -0.35 * np.ones_like(phi)], -1)
    ext = np.stack([look_at(e, t, np.array([0.0, 0.0, 1.0])) for e, t in zip(eyes, targets, strict=True)])
    focal = 0.5 * WIDTH / np.tan(np.deg2rad(30))
    intr = np.array([[focal, 0, (WIDTH - 1) / 2], [0, focal, (HEIGHT - 1) / 2], [0, 0, 1.0]])
    u, v = pixel_grid(HEIGHT, WIDTH)
    rays_cam = np.stack([(u - intr[0, 2]) / focal, (v - intr[1, 2]) / focal, np.ones_like(u)], -1)
    rays = np.einsum("sji,hwj->shwi", ext[:, :, :3], rays_cam)  # world directions with camera z = 1
    c = eyes[:, None, None]
    a = np.sum(rays[..., :2] ** 2, -1)
    b = 2 * np.sum(c[..., :2] * rays[..., :2], -1)
    cc = np.sum(c[..., :2] ** 2, -1) - WALL**2
    t_wall = (-b + np.sqrt(b * b - 4 * a * cc)) / (2 * a)
    with np.errstate(divide="ignore"):
        t_floor = np.where(rays[..., 2] < 0, -c[..., 2] / rays[..., 2], np.inf)
    depth = np.minimum(t_wall, t_floor)
    p = c + depth[..., None] * rays
    angle = np.arctan2(p[..., 1], p[..., 0])
    texture = np.sin(7 * angle + 2 * p[..., 2]) + np.cos(13 * angle - 3 * p[..., 2]) + np.sin(3 * p[..., 0] * p[..., 1])
    return ext, np.repeat(intr[None], num_frames, 0), depth, texture


def random_rotation(rng) -> np.ndarray:
    return sim3_exp(np.concatenate([[0.0], rng.normal(size=3), [0, 0, 0]]))[:3, :3]


class NoisyWindows:
    """``predict(frames)``: the ground truth in the window's first camera's frame, moved by a random Sim(3), with
    per-frame pose noise (rotation SIGMA_ROT per axis about the camera centre, centre SIGMA_T per axis) and
    SIGMA_DEPTH relative depth noise, all drawn per window."""

    def __init__(self, num_frames: int, seed: int = 0):
        self.ext, self.intr, self.depth, self.texture = loop_scene(num_frames)
        self.seed = seed
        self.calls = 0

    def __call__(self, frames: np.ndarray) -> Predictions:
        self.calls += 1
        rng = np.random.default_rng([self.seed, int(frames[0]), int(frames[-1]), len(frames), self.calls])
        n = len(frames)
        ext = self.ext[frames].copy()
        noise_rot = sim3_exp(np.concatenate([np.zeros((n, 1)), rng.normal(0, SIGMA_ROT, (n, 3)), np.zeros((n, 3))], 1))
        centres = camera_centers(ext) + rng.normal(0, SIGMA_T, (n, 3))
        rot = noise_rot[:, :3, :3] @ ext[:, :, :3]
        ext = np.concatenate([rot, -np.einsum("sij,sj->si", rot, centres)[..., None]], -1)
        first = self.ext[frames[0]]
        s, r = np.exp(rng.uniform(-1, 1)), random_rotation(rng)
        t = rng.normal(0, 2, 3)
        ext = transform_extrinsics(ext, s, r @ first[:, :3], s * r @ first[:, 3] + t)
        depth = s * self.depth[frames] * (1 + rng.normal(0, SIGMA_DEPTH, (n, HEIGHT, WIDTH)))
        desc = self.texture[frames].reshape(n, -1)
        desc = desc - desc.mean(-1, keepdims=True)
        return Predictions(
            images=np.zeros((n, 3, HEIGHT, WIDTH), np.float32),
            pose_enc=np.zeros((n, 9), np.float32),
            pose_enc_list=np.zeros((1, n, 9), np.float32),
            extrinsic=ext,
            intrinsic=self.intr[frames],
            depth=depth.astype(np.float32),
            depth_conf=np.full((n, HEIGHT, WIDTH), 3.0, np.float32),
            world_points=None,
            world_points_conf=None,
            world_points_from_depth=depth_to_world_points(depth, ext, self.intr[frames]).astype(np.float32),
            frame_descriptor=desc / np.linalg.norm(desc, axis=-1, keepdims=True),
        )


def ate_bound(predict: NoisyWindows, num_windows: int, overlap: int) -> float:
    """First-order bound on the Sim(3) ATE (a Sim(3) fit can only lower the centres' RMS error under the true
    similarity). Each frame's own centre noise adds 3 SIGMA_T^2 to its squared error. One overlap alignment averages
    ``overlap`` frames of two windows, so its rotation error has std SIGMA_ROT sqrt(2 / overlap) per axis and its
    translation error sqrt(2 / overlap) (SIGMA_T + SIGMA_ROT d_max) per axis (d_max: the largest depth, the lever of
    a frame's rotation noise on its points). Chained, these errors add as a random walk: after k alignments a frame
    at most D from every alignment's points (D: the largest camera-to-point distance) has a squared error of at
    most 3 SIGMA_T^2 + 3 k (2 / overlap) [(SIGMA_T + SIGMA_ROT d_max)^2 + SIGMA_ROT^2 D^2] in expectation.
    Averaged over the frames (k runs 0 .. K-1 evenly) and taken at three sigmas (the realised RMS of a random walk
    spreads around its expectation), that is the bound."""
    d_max = float(predict.depth.max())
    big_d = WALL + RING
    per_step = 3 * (2 / overlap) * ((SIGMA_T + SIGMA_ROT * d_max) ** 2 + (SIGMA_ROT * big_d) ** 2)
    mean_sq = 3 * SIGMA_T**2 + per_step * (num_windows - 1) / 2
    return 3 * np.sqrt(mean_sq)


def evaluate_seed(seed: int, num_frames: int = 520, options: WindowOptions | None = None) -> dict:
    """ATE without and with loop closure, the bound, and the loops found, for one noise seed."""
    opts = options or WindowOptions()
    row = dict(seed=seed)
    for closure in (False, True):
        predict = NoisyWindows(num_frames, seed)
        with tempfile.TemporaryDirectory() as tmp:
            run = run_windows(predict, num_frames, dataclasses.replace(opts, loop_closure=closure), tmp)
            row["ate_loop" if closure else "ate"] = ate(run.predictions.extrinsic, predict.ext)[0]
        if closure:
            row["loops"] = [(loop["frame_a"], loop["frame_b"]) for loop in run.loops]
    row["bound"] = ate_bound(predict, len(run.windows), opts.overlap)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0-4", help="a range a-b or a comma list")
    parser.add_argument("--frames", type=int, default=520)
    parser.add_argument("--window", type=int, default=60)
    parser.add_argument("--overlap", type=int, default=30)
    args = parser.parse_args()
    if "-" in args.seeds:
        a, b = (int(v) for v in args.seeds.split("-"))
        seeds = range(a, b + 1)
    else:
        seeds = [int(v) for v in args.seeds.split(",")]
    opts = WindowOptions(window=args.window, overlap=args.overlap)
    print(f"{args.frames} frames, window {args.window} / overlap {args.overlap}; loop diameter {2 * RING}")
    print("| seed | ATE, no loop closure | ATE, loop closure | derived bound | loops (frames) |")
    print("| ---: | ---: | ---: | ---: | --- |")
    for seed in seeds:
        r = evaluate_seed(seed, args.frames, opts)
        print(f"| {seed} | {r['ate']:.4f} | {r['ate_loop']:.4f} | {r['bound']:.3f} | {r['loops']} |")


if __name__ == "__main__":
    main()
