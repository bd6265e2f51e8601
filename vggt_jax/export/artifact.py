"""Loading and running an exported model: a folder of serialized StableHLO programs and one weights file.

    from vggt_jax.export import load
    model = load("exported/")                  # the program for this machine's platform
    out = model(images)                        # images [S, 3, H, W] in [0, 1] -> {"depth": [S, H, W, 1], ...}

This module needs jax, numpy and safetensors only: no model code (``vggt_jax.model``) and no flax, so a service
deploys the folder with a plain JAX install. The folder (``vggt_jax.export.build``) holds

    manifest.json            format, the model config, image size, platforms, programs, outputs, jax version
    weights.safetensors      the parameters, flat "a/b/c" keys (memory-mapped, one copy for every platform)
    <platform>[.f<N>].jaxexport   jax.export.Exported per platform: one with a symbolic frame count, or one per
                             frame bucket N

Frames are padded to the program's bucket (copies of the last frame, masked out of attention: the real frames'
outputs do not change) and the outputs cut back; a symbolic program is padded to ``FRAME_BUCKETS`` too, so a
service compiles one program per bucket, not per frame count.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import numpy as np

from vggt_jax.inference.outputs import FRAME_BUCKETS, scene_outputs

FORMAT = "vggt_jax.exported/1"
MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"


def program_name(platform: str, frames: int | None) -> str:
    return f"{platform}.jaxexport" if frames is None else f"{platform}.f{frames}.jaxexport"


def current_platform() -> str:
    backend = jax.default_backend()
    return {"gpu": "cuda"}.get(backend, backend)


def unflatten(flat: dict[str, np.ndarray]) -> dict:
    tree: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split("/")
        node = tree
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
    return tree


def flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, value in tree.items():
        if "/" in name:
            raise ValueError(f"parameter name {name!r} contains '/'")
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            out.update(flatten(value, key + "/"))
        else:
            out[key] = np.asarray(value)
    return out


class ExportedModel:
    """The exported forward for one platform: ``model(images [S, 3, H, W]) -> {name: array}`` without the batch
    axis (numpy), frames cut to S. ``manifest``: the folder's manifest; ``config``: the model config as a dict."""

    def __init__(self, directory: str | os.PathLike, platform: str | None = None):
        self.directory = Path(directory)
        manifest_path = self.directory / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(
                f"{self.directory} is not an exported model (no {MANIFEST}); write one with "
                "`python -m vggt_jax.export CHECKPOINT --out DIR`"
            )
        self.manifest = json.loads(manifest_path.read_text())
        if self.manifest.get("format") != FORMAT:
            raise ValueError(f"{manifest_path}: format {self.manifest.get('format')!r}, this loader reads {FORMAT!r}")
        self.config = self.manifest["config"]
        self.platform = platform or current_platform()
        programs = self.manifest["programs"].get(self.platform)
        if not programs:
            raise ValueError(
                f"{self.directory} has no program for {self.platform} (it has {sorted(self.manifest['programs'])}); "
                f"export again with --platforms {self.platform}"
            )
        self.image_hw = tuple(self.manifest["image_hw"])
        self.dtype = self.manifest["dtypes"][self.platform]
        # Deserialised once per bucket on first use; the weights are placed on the device once.
        self._programs = {p["frames"]: p["file"] for p in programs}
        self._loaded: dict = {}
        self.params = None if self.manifest["weights"] == "baked" else jax.device_put(self._read_weights())

    def _read_weights(self) -> dict:
        from safetensors.numpy import load_file

        return unflatten(load_file(self.directory / WEIGHTS))

    @property
    def symbolic(self) -> bool:
        return None in self._programs

    @property
    def frame_buckets(self) -> tuple[int, ...]:
        return FRAME_BUCKETS if self.symbolic else tuple(sorted(self._programs))

    def bucket(self, frames: int) -> int:
        buckets = self.frame_buckets
        fits = [b for b in buckets if b >= frames]
        if fits:
            return fits[0]
        if self.symbolic:
            return frames
        raise ValueError(
            f"{frames} frames: this export's largest frame bucket is {max(buckets)}; export with --frames symbolic "
            f"or a larger bucket"
        )

    def program(self, frames: int):
        key = None if self.symbolic else frames
        if key not in self._loaded:
            data = (self.directory / self._programs[key]).read_bytes()
            self._loaded[key] = jax.export.deserialize(bytearray(data))
        return self._loaded[key]

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        images = np.asarray(images, np.float32)
        if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != self.image_hw:
            raise ValueError(
                f"images must be [S, 3, {self.image_hw[0]}, {self.image_hw[1]}] (the exported size), got "
                f"{images.shape}; preprocess to that size or export for it (--image-size)"
            )
        s = len(images)
        s_pad = self.bucket(s)
        padded = np.concatenate([images, np.repeat(images[-1:], s_pad - s, axis=0)])[None]
        mask = (np.arange(s_pad) < s)[None]
        args = (padded, mask) if self.params is None else (self.params, padded, mask)
        return scene_outputs(self.program(s_pad).call(*args), s)


def load(directory: str | os.PathLike, platform: str | None = None) -> ExportedModel:
    """The exported model in ``directory`` for ``platform`` (default: this machine's)."""
    return ExportedModel(directory, platform)
