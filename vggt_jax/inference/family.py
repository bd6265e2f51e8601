"""What differs between the model families at inference: how images are preprocessed and at which resolution.

VGGT resizes to a width (``crop``, default) or pads to a square (``pad``) at 518 px; VGGT-Omega fits its
``balanced`` (default) or ``max_size`` box at 512 px (256 for the text-aligned model). A checkpoint may name its
own resolution (``VGGTConfig.image_resolution``)."""

from __future__ import annotations

from vggt_jax.config import VGGTConfig
from vggt_jax.inference.preprocess import load_and_preprocess_images
from vggt_jax.inference.preprocess_omega import OMEGA_MODES, load_and_preprocess_images_omega

VGGT_MODES = ("crop", "pad")


def default_resolution(config: VGGTConfig) -> int:
    if config.image_resolution:
        return config.image_resolution
    if config.family == "vggt_omega":
        return 256 if config.text_head is not None else 512
    return 518


def preprocess_for(config: VGGTConfig, source, mode: str | None = None, resolution: int | None = None, **kw):
    """``(images [S, 3, H, W], metas)`` of ``source`` as ``config``'s family expects them (``kw``: fps, max_frames,
    into: as ``load_and_preprocess_images``); ``mode`` / ``resolution`` default to the family's."""
    resolution = resolution or default_resolution(config)
    if config.family == "vggt_omega":
        mode = mode or "balanced"
        if mode not in OMEGA_MODES:
            raise ValueError(
                f"--mode {mode} is VGGT's; a VGGT-Omega checkpoint takes --mode {' or '.join(OMEGA_MODES)}"
            )
        return load_and_preprocess_images_omega(source, mode, resolution, config.patch_size, **kw)
    if mode in OMEGA_MODES:
        raise ValueError("--mode balanced/max_size are VGGT-Omega's; VGGT takes --mode crop or pad")
    return load_and_preprocess_images(source, mode or "crop", target_size=resolution, **kw)
