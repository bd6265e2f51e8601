"""Writing an exported model: the Predictor's forward serialized as StableHLO per platform, weights beside it.

    python -m vggt_jax.export CHECKPOINT --out DIR [--platforms cpu,cuda,tpu] [--dtype DTYPE]
        [--image-size HxW] [--frames symbolic | 1,2,4,8] [--weights argument | baked]

The program is ``model.apply(params, images [1, S, 3, H, W], None, frame_mask [1, S])``, the forward the
Predictor runs (no track queries), traced for each platform (``lowering.lowering_for``: ``auto`` picks cuDNN on
cuda and splash on tpu) and serialized with ``jax.export``. ``--frames symbolic`` (default): one program per
platform with a symbolic frame count, for any S; the tiled kernels, the MLP row chunks and the dense heads' frame
loop all take a symbolic S, and splash, which builds its block mask for static lengths, gives way to the chunked
kernel on tpu. ``--frames 1,2,4``: one program per frame bucket, static, splash included. cuDNN's and Mosaic's
custom calls carry no cross-version compatibility guarantee: run the artifact with the jaxlib that wrote it
(``manifest.json`` records it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np

from vggt_jax.config import VGGTConfig
from vggt_jax.export import artifact
from vggt_jax.export.lowering import PLATFORMS, lowering_for
from vggt_jax.model.vggt import VGGT
from vggt_jax.staging import staged_directory

CUDNN_TARGETS = tuple(
    f"__cudnn$fmha{kind}{suffix}"
    for kind in ("Softmax", "SoftmaxDropout", "ScaleBiasSoftmax", "ScaleBiasSoftmaxDropout")
    for suffix in ("", "Backward")
)
WEIGHTS_MODES = ("argument", "baked")


def default_dtype(platform: str) -> str:
    """float32 on CPU, bfloat16 on accelerators (as the Predictor and upstream's demos under autocast)."""
    return "float32" if platform == "cpu" else "bfloat16"


def default_image_hw(config: VGGTConfig) -> tuple[int, int]:
    """The 4:3 landscape size at the checkpoint's resolution as its width (VGGT 392x518, Omega 384x512)."""
    from vggt_jax.inference.family import default_resolution

    p = config.patch_size
    width = default_resolution(config)
    return int(round(width * 0.75 / p)) * p, width


def forward_fn(config: VGGTConfig, params: dict | None = None):
    """``fn(params, images, frame_mask)`` (``params`` baked in when given: ``fn(images, frame_mask)``)."""
    model = VGGT(config)
    dtype = jnp.dtype(config.dtype)

    def forward(p, images, frame_mask):
        return model.apply(p, images.astype(dtype), None, frame_mask)

    if params is None:
        return forward
    return lambda images, frame_mask: forward(params, images, frame_mask)


def export_program(
    config: VGGTConfig, params: dict, platform: str, image_hw: tuple[int, int], frames: int | None, baked: bool
) -> jax.export.Exported:
    """One platform's program; ``frames=None``: a symbolic frame count."""
    s = jax.export.symbolic_shape("frames")[0] if frames is None else frames
    images = jax.ShapeDtypeStruct((1, s, 3, *image_hw), jnp.float32)
    mask = jax.ShapeDtypeStruct((1, s), jnp.bool_)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), params)
    fn, args = (forward_fn(config, params), (images, mask)) if baked else (forward_fn(config), (abstract, images, mask))
    checks = [jax.export.DisabledSafetyCheck.custom_call(t) for t in CUDNN_TARGETS]
    with lowering_for(platform):
        return jax.export.export(jax.jit(fn), platforms=(platform,), disabled_checks=checks)(*args)


def export_model(
    config: VGGTConfig,
    params: dict,
    out: str | Path,
    *,
    platforms: Sequence[str] = PLATFORMS,
    dtype: str | None = None,
    image_hw: tuple[int, int] | None = None,
    frames: Sequence[int] | None = None,
    weights: str = "argument",
    overwrite: bool = False,
) -> Path:
    """Write the exported model of ``config`` / ``params`` to ``out`` (a temporary folder renamed when complete).
    ``frames``: None for one symbolic program per platform, else the frame buckets to compile one program each."""
    out = Path(out)
    unknown = set(platforms) - set(PLATFORMS)
    if unknown:
        raise ValueError(f"unknown platform(s) {sorted(unknown)}; choose from {', '.join(PLATFORMS)}")
    if weights not in WEIGHTS_MODES:
        raise ValueError(f"--weights {weights}: choose {' or '.join(WEIGHTS_MODES)}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    image_hw = tuple(image_hw or default_image_hw(config))
    p = config.patch_size
    if image_hw[0] % p or image_hw[1] % p:
        raise ValueError(f"image size {image_hw[0]}x{image_hw[1]} is not a multiple of the patch size {p}")
    buckets = [None] if frames is None else sorted({int(f) for f in frames})
    if any(b is not None and b < 1 for b in buckets):
        raise ValueError(f"frame buckets must be >= 1, got {frames}")
    with staged_directory(out) as tmp:
        programs, dtypes = {}, {}
        for platform in platforms:
            dtypes[platform] = dtype or default_dtype(platform)
            cfg = config.replace(
                dtype=dtypes[platform], head_dtype="float64" if dtypes[platform] == "float64" else "float32"
            )
            programs[platform] = []
            for n in buckets:
                exported = export_program(cfg, params, platform, image_hw, n, weights == "baked")
                name = artifact.program_name(platform, n)
                (tmp / name).write_bytes(exported.serialize())
                programs[platform].append({"frames": n, "file": name})
        if weights == "argument":
            from safetensors.numpy import save_file

            save_file(artifact.flatten(jax.tree.map(np.asarray, params)), tmp / artifact.WEIGHTS)
        manifest = {
            "format": artifact.FORMAT,
            "config": config.to_dict(),
            "image_hw": list(image_hw),
            "dtypes": dtypes,
            "programs": programs,
            "weights": weights,
            "jax": jax.__version__,
            "jaxlib": jaxlib.__version__,
        }
        (tmp / artifact.MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return out
