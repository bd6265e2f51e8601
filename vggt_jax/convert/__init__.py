"""Official PyTorch / safetensors VGGT weights -> Flax params and orbax checkpoints."""

from vggt_jax.convert.convert import ConversionError, abstract_params, convert_state_dict, count_params

__all__ = ["ConversionError", "abstract_params", "convert_state_dict", "count_params"]
