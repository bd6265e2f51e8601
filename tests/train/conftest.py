"""Shared pieces of the training tests: the micro model config, random batches, a persistent compilation cache.

The micro model (``vggt_jax.config.micro``) has every component of VGGT and compiles a train step in tens of seconds
on a 2-core CPU; the tiny model would take minutes per program. Compiled programs are cached on disk
(``VGGT_JAX_TEST_JIT_CACHE``, default a folder in the temp dir) so the subprocesses of the resume and multi-process
tests, which compile the same programs, load them instead.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import jax
import numpy as np
import pytest

CACHE_DIR = os.environ.get("VGGT_JAX_TEST_JIT_CACHE", str(Path(tempfile.gettempdir()) / "vggt_jax_test_jit_cache"))
jax.config.update("jax_compilation_cache_dir", CACHE_DIR)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

REPO = Path(__file__).resolve().parents[2]


def load_file_module(relative_path: str):
    """Import a repository file outside the package (a script or a config) as a module named after it. It is
    registered in ``sys.modules`` first: flax module dataclasses look their module up there."""
    path = REPO / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def micro_train_config(steps: int = 4, heads=("camera", "depth", "point"), **over):
    """A training config for the micro model on 28 px synthetic scenes (one batch shape)."""
    from vggt_jax.train.config import base_config

    c = base_config()
    c.total_steps = steps
    c.log_every = 2
    c.eval_every = 0
    c.ckpt_every = steps
    c.model.variant = "micro"
    c.model.heads = tuple(heads)
    c.optim.lr = 1e-3
    c.data.img_size = 28
    c.data.aspect_ratios = (1.0,)
    c.data.num_frames = (2, 3)
    c.data.frame_buckets = (3,)
    c.data.max_images_per_batch = 6
    c.data.num_tracks = 8
    c.data.source.update(num_scenes=16, frames_per_scene=4, height=36, width=48)
    c.eval.num_batches = 1
    c.eval.data.num_frames = (3, 3)
    c.eval.data.frame_buckets = (3,)
    c.eval.source.num_scenes = 4
    for key, value in over.items():
        target = c
        *path, last = key.split(".")
        for p in path:
            target = target[p]
        target[last] = value
    return c


def random_rotation(rng: np.random.Generator, n: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(n, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    return q * np.linalg.det(q)[:, None, None]


def random_batch(seed: int, b: int = 4, s: int = 3, h: int = 28, w: int = 28, n_tracks: int = 0) -> dict:
    """A batch with the pipeline's layout: random cameras and depths, consistent world points, ~90% valid pixels."""
    rng = np.random.default_rng(seed)
    rot = random_rotation(rng, b * s).reshape(b, s, 3, 3)
    extrinsics = np.concatenate([rot, rng.normal(size=(b, s, 3, 1))], -1)
    f = rng.uniform(20, 40, size=(b, s))
    intrinsics = np.zeros((b, s, 3, 3))
    intrinsics[..., 0, 0], intrinsics[..., 1, 1] = f, f
    intrinsics[..., 0, 2], intrinsics[..., 1, 2], intrinsics[..., 2, 2] = w / 2, h / 2, 1
    depths = rng.uniform(1, 4, size=(b, s, h, w))
    masks = rng.uniform(size=(b, s, h, w)) > 0.1
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    cam = np.stack([(u - w / 2) * depths / f[..., None, None], (v - h / 2) * depths / f[..., None, None], depths], -1)
    world = np.einsum("bsji,bshwj->bshwi", rot, cam - extrinsics[:, :, None, None, :, 3])
    batch = dict(
        images=rng.uniform(size=(b, s, h, w, 3)).astype(np.float32),
        extrinsics=extrinsics.astype(np.float32),
        intrinsics=intrinsics.astype(np.float32),
        depths=np.where(masks, depths, 0).astype(np.float32),
        world_points=np.where(masks[..., None], world, 0).astype(np.float32),
        point_masks=masks,
        frame_mask=np.ones((b, s), bool),
    )
    if n_tracks:
        tracks = rng.uniform(2, min(h, w) - 3, size=(b, 1, n_tracks, 2)) + rng.normal(0, 1, size=(b, s, n_tracks, 2))
        batch.update(tracks=tracks.astype(np.float32), track_vis=rng.uniform(size=(b, s, n_tracks)) > 0.2)
    return batch


@pytest.fixture(scope="session")
def jit_cache_dir() -> str:
    return CACHE_DIR
