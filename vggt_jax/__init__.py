"""vggt_jax: VGGT (Visual Geometry Grounded Transformer) in JAX/Flax."""

from vggt_jax.config import VGGTConfig, get_config, tiny, vggt_1b

__all__ = ["VGGTConfig", "get_config", "tiny", "vggt_1b", "VGGT", "load_checkpoint", "save_checkpoint"]


def __getattr__(name):
    # Lazy: importing the package for its config must not import flax/orbax.
    if name == "VGGT":
        from vggt_jax.model.vggt import VGGT

        return VGGT
    if name in ("load_checkpoint", "save_checkpoint"):
        from vggt_jax.convert import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(name)
