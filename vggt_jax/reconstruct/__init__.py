"""Reconstruction after the forward pass: tracks from several query frames, bundle adjustment (pycolmap)."""

from vggt_jax.reconstruct.bundle import BAOptions, BAResult, Tracks, bundle_adjust, reprojection_errors

__all__ = ["BAOptions", "BAResult", "Tracks", "bundle_adjust", "reprojection_errors"]
