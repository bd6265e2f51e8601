"""Random parameters without compiling ``init``, for benchmarks and tests where the values do not matter.

``jax.jit(model.init)`` compiles and runs the whole model once (for the 1B model: minutes and ~8 GB beyond the
weights; for the small test configs still the slowest step of a test). Here the shapes come from tracing ``init``
(``jax.eval_shape``) and each leaf is drawn in numpy at the scale of a trained model: LayerNorm scales 1, biases 0,
kernels N(0, 1/fan_in), every other parameter N(0, 0.02^2).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def random_params(model: nn.Module, *example_args, seed: int = 0) -> dict:
    """Parameters of ``model`` for ``model.init(key, *example_args)``; ``example_args`` may be
    ``jax.ShapeDtypeStruct``s (parameter shapes rarely depend on input sizes, so small ones do)."""
    shapes = jax.eval_shape(model.init, jax.random.key(0), *example_args)
    rng = np.random.default_rng(seed)

    def leaf(path, x):
        name = str(getattr(path[-1], "key", path[-1]))
        dtype = np.dtype(x.dtype)
        if name == "scale":
            value = np.ones(x.shape, dtype)
        elif name == "bias":
            value = np.zeros(x.shape, dtype)
        else:
            fan_in = int(np.prod(x.shape[:-1])) if len(x.shape) > 1 else 1
            std = fan_in**-0.5 if name == "kernel" else 0.02
            value = (rng.standard_normal(x.shape, dtype=np.float32) * np.float32(std)).astype(dtype)
        return jnp.asarray(value, x.dtype)

    return jax.tree_util.tree_map_with_path(leaf, shapes)
