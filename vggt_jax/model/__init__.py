"""Flax linen modules mirroring the official VGGT module tree."""
