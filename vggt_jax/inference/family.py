"""What differs between the model families outside the model: preprocessing, resolution, display name.

One record per family (``FAMILIES``, looked up by ``VGGTConfig.family``); the converter's rename rules are the
per-family table of ``vggt_jax.convert.rules`` and the architecture is the config's. VGGT resizes to a width
(``crop``, default) or pads to a square (``pad``) at 518 px; VGGT-Omega fits its ``balanced`` (default) or
``max_size`` box at 512 px (256 for the text-aligned model). A checkpoint may name its own resolution
(``VGGTConfig.image_resolution``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from vggt_jax.config import VGGTConfig
from vggt_jax.inference.preprocess import load_and_preprocess_images
from vggt_jax.inference.preprocess_omega import OMEGA_MODES, load_and_preprocess_images_omega


@dataclasses.dataclass(frozen=True)
class Family:
    name: str  # as users read it
    modes: tuple[str, ...]  # preprocessing modes, the default first
    resolution: Callable[[VGGTConfig], int]  # the default preprocessing size
    preprocess: Callable  # (source, mode, resolution, patch_size, **kw) -> (images, metas)


def _vggt_preprocess(source, mode, resolution, patch_size, **kw):
    return load_and_preprocess_images(source, mode, target_size=resolution, **kw)


FAMILIES = {
    "vggt": Family("VGGT", ("crop", "pad"), lambda config: 518, _vggt_preprocess),
    "vggt_omega": Family(
        "VGGT-Omega",
        OMEGA_MODES,
        lambda config: 256 if config.text_head is not None else 512,
        load_and_preprocess_images_omega,
    ),
}


def family_of(config: VGGTConfig) -> Family:
    return FAMILIES[config.family]


def default_resolution(config: VGGTConfig) -> int:
    return config.image_resolution or family_of(config).resolution(config)


def preprocess_for(config: VGGTConfig, source, mode: str | None = None, resolution: int | None = None, **kw):
    """``(images [S, 3, H, W], metas)`` of ``source`` as ``config``'s family expects them (``kw``: fps, max_frames,
    into: as ``load_and_preprocess_images``); ``mode`` / ``resolution`` default to the family's."""
    family = family_of(config)
    mode = mode or family.modes[0]
    if mode not in family.modes:
        other = (
            next(f for f in FAMILIES.values() if mode in f.modes)
            if any(mode in f.modes for f in FAMILIES.values())
            else None
        )
        whose = f"{other.name}'s" if other else "not a preprocessing mode"
        raise ValueError(
            f"--mode {mode} is {whose}; a {family.name} checkpoint takes --mode {' or '.join(family.modes)}"
        )
    return family.preprocess(source, mode, resolution or default_resolution(config), config.patch_size, **kw)
