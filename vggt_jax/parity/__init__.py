"""Parity with the official PyTorch VGGT on the golden fixtures (``python -m vggt_jax.parity``)."""
