"""The model for other platforms and for deployment: lowering for cuda/tpu without the device (``lowering``,
``matrix``) and the exported model (``build`` writes it, ``load`` runs it without the model code)."""

from __future__ import annotations


def load(directory, platform=None):
    """The exported model in ``directory`` (``python -m vggt_jax.export``) for ``platform`` (default: this
    machine's); see ``vggt_jax.export.artifact``. Imports no model code."""
    from vggt_jax.export.artifact import load as load_artifact

    return load_artifact(directory, platform)
