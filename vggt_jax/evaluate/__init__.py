"""The accuracy harness: reconstructions against ground truth (``python -m vggt_jax.evaluate``)."""
