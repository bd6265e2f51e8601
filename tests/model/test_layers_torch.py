"""Single layers against PyTorch primitives with the same weights: a DINOv2 block, the DPT ConvTranspose
upsampling and the RefineNet fusion block with its in-place ReLU residual units."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vggt_jax.convert.rules import TRANSFORMS, map_key
from vggt_jax.model.dpt_head import FeatureFusionBlock, PatchUpsample
from vggt_jax.model.layers import Block

torch = pytest.importorskip("torch")
F = torch.nn.functional


def to_params(module: torch.nn.Module) -> dict:
    """A torch module's state dict through our rename table, as a flax params tree."""
    tree: dict = {}
    for key, value in module.state_dict().items():
        path, transform = map_key(key)
        node = tree
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = jnp.asarray(TRANSFORMS[transform](value.numpy()))
    return {"params": tree}


class TorchDinoBlock(torch.nn.Module):
    """DINOv2 block from torch primitives: pre-norm (eps 1e-6), SDPA attention, LayerScale, erf GELU."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.norm1 = torch.nn.LayerNorm(dim, eps=1e-6)
        self.norm2 = torch.nn.LayerNorm(dim, eps=1e-6)
        self.attn = torch.nn.Module()
        self.attn.qkv = torch.nn.Linear(dim, 3 * dim)
        self.attn.proj = torch.nn.Linear(dim, dim)
        self.ls1 = torch.nn.Module()
        self.ls1.gamma = torch.nn.Parameter(torch.rand(dim))
        self.ls2 = torch.nn.Module()
        self.ls2.gamma = torch.nn.Parameter(torch.rand(dim))
        self.mlp = torch.nn.Module()
        self.mlp.fc1 = torch.nn.Linear(dim, 4 * dim)
        self.mlp.fc2 = torch.nn.Linear(4 * dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.attn.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]).transpose(1, 2).reshape(b, n, c)
        x = x + self.ls1.gamma * self.attn.proj(a)
        return x + self.ls2.gamma * self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))


def test_dino_block_float64():
    torch.manual_seed(0)
    ref = TorchDinoBlock(64, 4).double()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(2, 13, 64, dtype=torch.float64)
    with jax.enable_x64(True):
        ours = Block(64, 4, init_values=1.0, norm_eps=1e-6, dtype=jnp.float64, param_dtype=jnp.float64)
        y = ours.apply(to_params(ref), jnp.asarray(x.numpy()))
    np.testing.assert_allclose(np.asarray(y), ref(x).detach().numpy(), rtol=0, atol=1e-13)


@pytest.mark.parametrize("factor", [2, 4])
def test_patch_upsample_is_conv_transpose(factor):
    torch.manual_seed(factor)
    ref = torch.nn.ConvTranspose2d(6, 5, kernel_size=factor, stride=factor).double()
    x = torch.randn(2, 6, 3, 4, dtype=torch.float64)
    with jax.enable_x64(True):
        wrapped = torch.nn.Module()
        wrapped.resize_layers = torch.nn.ModuleList([ref])  # the rename rule keys on resize_layers.{0,1}
        params = to_params(wrapped)["params"]["resize_layers_0"]
        y = PatchUpsample(5, factor, jnp.float64, jnp.float64).apply(
            {"params": params}, jnp.asarray(x.numpy().transpose(0, 2, 3, 1))
        )
    np.testing.assert_allclose(np.asarray(y).transpose(0, 3, 1, 2), ref(x).detach().numpy(), atol=1e-14)


class TorchRCU(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(c, c, 3, padding=1)
        self.act = torch.nn.ReLU(inplace=True)  # as upstream: overwrites the unit's input

    def forward(self, x):
        out = self.conv2(self.act(self.conv1(self.act(x))))
        return out + x


class TorchFusion(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.resConfUnit1 = TorchRCU(c)
        self.resConfUnit2 = TorchRCU(c)
        self.out_conv = torch.nn.Conv2d(c, c, 1)

    def forward(self, x0, x1, size):
        out = self.resConfUnit2(x0 + self.resConfUnit1(x1))
        return self.out_conv(F.interpolate(out, size=size, mode="bilinear", align_corners=True))


def test_fusion_block_with_inplace_relu_float64():
    torch.manual_seed(1)
    c = 8
    ref = TorchFusion(c).double()
    x0, x1 = torch.randn(2, c, 5, 7, dtype=torch.float64), torch.randn(2, c, 5, 7, dtype=torch.float64)
    with jax.enable_x64(True):
        params = to_params(ref)
        nhwc = lambda t: jnp.asarray(t.numpy().transpose(0, 2, 3, 1))  # noqa: E731
        y = FeatureFusionBlock(c, dtype=jnp.float64, param_dtype=jnp.float64).apply(
            params, nhwc(x0), nhwc(x1), size=(9, 13)
        )
    expected = ref(x0.clone(), x1.clone(), (9, 13)).detach().numpy()
    np.testing.assert_allclose(np.asarray(y).transpose(0, 3, 1, 2), expected, atol=1e-13)
    # The in-place ReLU matters: with a plain skip of x the results differ by O(1).
    assert np.abs(expected).max() > 0.1
