"""The track head: bilinear sampling, attention blocks, GroupNorm and the correlation pyramid against PyTorch
primitives with the same weights; the tracker's embeddings against closed forms; and the whole head against the tiny
fixture, fed the golden aggregator layers."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vggt_jax.config import TrackerConfig, tiny
from vggt_jax.convert.rules import TRANSFORMS, map_key
from vggt_jax.model.sampling import bilinear_sample
from vggt_jax.model.track_head import TrackHead
from vggt_jax.model.tracker import (
    BaseTrackerPredictor,
    avg_pool_2x2,
    corr_sample,
    get_2d_embedding,
    get_2d_sincos_pos_embed,
)
from vggt_jax.model.update_former import AttnBlock, CrossAttnBlock, MultiheadAttention
from vggt_jax.parity.compare import check
from vggt_jax.parity.recipe import iter_weights, load_table


def to_params(state_dict: dict, prefix: str = "") -> dict:
    """State-dict entries under ``prefix`` (stripped) through our rename table, as a flax params tree."""
    tree: dict = {}
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            continue
        path, transform = map_key(key[len(prefix) :])
        node = tree
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = jnp.asarray(TRANSFORMS[transform](np.asarray(value)))
    return {"params": tree}


def torch_params(module, name: str) -> dict:
    """A torch module's weights as flax params, converted as if it were a child ``name`` of some parent (the rename
    rules key on the parent, e.g. ``attn.in_proj_weight``)."""
    tree = to_params({f"{name}.{k}": v.numpy() for k, v in module.state_dict().items()})
    return {"params": tree["params"][name]}


def sample_points(rng, b: int, n: int, h: int, w: int) -> np.ndarray:
    """[B, N, 2] pixel (x, y): inside, outside on every side, on integer pixels and exactly on the borders."""
    pts = np.stack([rng.uniform(-3, w + 2, (b, n)), rng.uniform(-3, h + 2, (b, n))], axis=-1)
    pts[:, :20] = np.round(pts[:, :20])
    pts[:, 20:25] = (w - 1, h - 1)
    pts[:, 25:30] = 0.0
    pts[:, 30:35] = (-1.0, h)
    return pts


@pytest.mark.parametrize("padding_mode", ["zeros", "border"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(2, 28, 39, 32), (3, 7, 9, 1), (1, 1, 5, 3)])
def test_bilinear_sample_is_grid_sample_bit_exact(shape, dtype, padding_mode):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(sum(shape))
    b, h, w, c = shape
    image = rng.standard_normal((b, c, h, w)).astype(dtype)
    pts = sample_points(rng, b, 500, h, w).astype(dtype)
    # Upstream's bilinear_sampler: normalise in the coordinates' dtype, then grid_sample(align_corners=True).
    scale = torch.tensor([2 / max(w - 1, 1), 2 / max(h - 1, 1)], dtype=getattr(torch, dtype))
    grid = torch.from_numpy(pts)[:, :, None] * scale - 1
    ref = torch.nn.functional.grid_sample(torch.from_numpy(image), grid, align_corners=True, padding_mode=padding_mode)
    ref = ref[..., 0].permute(0, 2, 1)  # [B, C, N, 1] -> [B, N, C]
    with jax.enable_x64(dtype == "float64"):
        fn = jax.jit(bilinear_sample, static_argnums=2)
        ours = fn(jnp.asarray(image.transpose(0, 2, 3, 1)), jnp.asarray(pts), padding_mode)
    # Bit-exact on XLA:CPU (sampling.py's docstring says how); other backends may contract FMAs differently.
    if jax.default_backend() == "cpu":
        np.testing.assert_array_equal(np.asarray(ours), ref.numpy())
    else:
        np.testing.assert_allclose(np.asarray(ours), ref.numpy(), rtol=0, atol=1e-5)


def test_bilinear_sample_gradients_match_grid_sample():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    image = rng.standard_normal((2, 3, 6, 8))
    pts = np.stack([rng.uniform(0.1, 6.9, (2, 10)), rng.uniform(0.1, 4.9, (2, 10))], axis=-1)
    weights = rng.standard_normal((2, 10, 3))
    t_image = torch.tensor(image, requires_grad=True)
    t_pts = torch.tensor(pts, requires_grad=True)
    grid = (t_pts * torch.tensor([2 / 7, 2 / 5], dtype=torch.float64) - 1)[:, :, None]
    out = torch.nn.functional.grid_sample(t_image, grid, align_corners=True)[..., 0].permute(0, 2, 1)
    (out * torch.from_numpy(weights)).sum().backward()
    with jax.enable_x64(True):
        loss = lambda im, p: jnp.sum(bilinear_sample(im, p) * weights)  # noqa: E731
        g_image, g_pts = jax.grad(loss, argnums=(0, 1))(jnp.asarray(image.transpose(0, 2, 3, 1)), jnp.asarray(pts))
    np.testing.assert_allclose(np.asarray(g_image).transpose(0, 3, 1, 2), t_image.grad.numpy(), atol=1e-13)
    np.testing.assert_allclose(np.asarray(g_pts), t_pts.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("cross", [False, True])
def test_multihead_attention_is_torch(cross):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ref = torch.nn.MultiheadAttention(32, 4, batch_first=True).double().eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.1 * torch.randn_like(p))  # non-zero biases
    x = torch.randn(3, 7, 32, dtype=torch.float64)
    ctx = torch.randn(3, 5, 32, dtype=torch.float64) if cross else x
    with torch.no_grad():
        expected = ref(x, ctx, ctx)[0].numpy()
    with jax.enable_x64(True):
        ours = MultiheadAttention(32, 4, jnp.float64, jnp.float64).apply(
            torch_params(ref, "attn"),
            jnp.asarray(x.numpy()),
            jnp.asarray(ctx.numpy()) if cross else None,
        )
    np.testing.assert_allclose(np.asarray(ours), expected, rtol=0, atol=1e-13)


class _TorchBlock:
    """Upstream's AttnBlock / CrossAttnBlock forward from torch primitives (residual from the normalised x)."""

    def __init__(self, torch, dim, heads, cross):
        nn = torch.nn
        self.m = nn.Module()
        self.m.norm1, self.m.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        if cross:
            self.m.norm_context, self.m.cross_attn = nn.LayerNorm(dim), attn
        else:
            self.m.attn = attn
        self.m.mlp = nn.Module()
        self.m.mlp.fc1, self.m.mlp.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.m.double().eval()
        with torch.no_grad():
            for p in self.m.parameters():
                p.add_(0.1 * torch.randn_like(p))
        self.cross, self.gelu = cross, torch.nn.functional.gelu

    def __call__(self, x, ctx=None):
        m = self.m
        x = m.norm1(x)
        if self.cross:
            ctx = m.norm_context(ctx)
            x = x + m.cross_attn(x, ctx, ctx)[0]
        else:
            x = x + m.attn(x, x, x)[0]
        return x + m.mlp.fc2(self.gelu(m.mlp.fc1(m.norm2(x))))


@pytest.mark.parametrize("cross", [False, True])
def test_attention_blocks_residual_from_normalised_input(cross):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    ref = _TorchBlock(torch, 32, 4, cross)
    x = 3 + 2 * torch.randn(2, 6, 32, dtype=torch.float64)  # off-centre, so norm1(x) != x matters
    ctx = torch.randn(2, 9, 32, dtype=torch.float64)
    with torch.no_grad():
        expected = (ref(x, ctx) if cross else ref(x)).numpy()
    with jax.enable_x64(True):
        block = (CrossAttnBlock if cross else AttnBlock)(32, 4, dtype=jnp.float64, param_dtype=jnp.float64)
        args = (jnp.asarray(x.numpy()), jnp.asarray(ctx.numpy())) if cross else (jnp.asarray(x.numpy()),)
        ours = block.apply(torch_params(ref.m, "blk"), *args)
    np.testing.assert_allclose(np.asarray(ours), expected, rtol=0, atol=1e-12)


def test_group_norm_one_group_is_torch():
    torch = pytest.importorskip("torch")
    import flax.linen as nn

    torch.manual_seed(2)
    ref = torch.nn.GroupNorm(1, 16).double()
    with torch.no_grad():
        ref.weight.add_(0.1 * torch.randn(16, dtype=torch.float64))
        ref.bias.add_(0.1 * torch.randn(16, dtype=torch.float64))
    x = 5 + torch.randn(40, 16, dtype=torch.float64)  # [B*N*S, C], as the tracker feeds it
    with jax.enable_x64(True):
        gn = nn.GroupNorm(
            num_groups=1, epsilon=1e-5, use_fast_variance=False, dtype=jnp.float64, param_dtype=jnp.float64
        )
        params = {
            "params": {
                "scale": jnp.asarray(ref.weight.detach().numpy()),
                "bias": jnp.asarray(ref.bias.detach().numpy()),
            }
        }
        ours = gn.apply(params, jnp.asarray(x.numpy()))
    np.testing.assert_allclose(np.asarray(ours), ref(x).detach().numpy(), rtol=0, atol=1e-13)


@pytest.mark.parametrize("hw", [(28, 39), (7, 5), (2, 3)])
def test_avg_pool_is_torch_bit_exact(hw):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(3).standard_normal((2, 8, *hw)).astype(np.float32)
    ref = torch.nn.functional.avg_pool2d(torch.from_numpy(x), kernel_size=2, stride=2).numpy()
    ours = jax.jit(avg_pool_2x2)(jnp.asarray(x.transpose(0, 2, 3, 1)))
    np.testing.assert_array_equal(np.asarray(ours).transpose(0, 3, 1, 2), ref)


def test_sincos_pos_embed_closed_form():
    dim, (h, w) = 100, (5, 7)
    emb = get_2d_sincos_pos_embed(dim, (h, w))
    assert emb.shape == (h, w, dim) and emb.dtype == np.float32
    q = dim // 4  # frequencies per (axis, sin|cos) block
    omega = 10000.0 ** (-np.arange(q) / q)
    i, j = 3, 6  # row y = 3, column x = 6
    expected = np.concatenate([np.sin(j * omega), np.cos(j * omega), np.sin(i * omega), np.cos(i * omega)])
    np.testing.assert_array_equal(emb[i, j], expected.astype(np.float32))  # float64, rounded once
    assert np.all(emb[:, :, : dim // 2] == emb[:1, :, : dim // 2])  # the first half depends on x only


def test_flow_embedding_is_float32_rounding_of_float64():
    xy = np.array([[[0.0, 0.0], [1.25, -3.5]]])
    with jax.enable_x64(True):
        emb = np.asarray(get_2d_embedding(jnp.asarray(xy), 8))
    assert emb.dtype == np.float32 and emb.shape == (1, 2, 16)
    np.testing.assert_array_equal(emb[0, 0], np.tile([0.0, 1.0], 8))  # iteration 0: every flow is zero
    freqs = np.arange(0, 8, 2, dtype=np.float32) * np.float32(1000 / 8)  # float32, as upstream's div_term
    for axis in range(2):
        angles = xy[0, 1, axis] * freqs.astype(np.float64)
        expected = np.stack([np.sin(angles), np.cos(angles)], -1).reshape(-1).astype(np.float32)
        np.testing.assert_array_equal(emb[0, 1, 8 * axis : 8 * (axis + 1)], expected)


def test_corr_sample_window_convention():
    rng = np.random.default_rng(4)
    fmaps = rng.standard_normal((1, 2, 6, 7, 4))
    targets = rng.standard_normal((1, 2, 3, 4))
    coords = np.array([[[[2.0, 3.0], [0.0, 5.0], [6.0, 1.0]]] * 2])  # integer pixels: sampling picks one value
    with jax.enable_x64(True):
        out = np.asarray(corr_sample([jnp.asarray(fmaps)], jnp.asarray(targets), jnp.asarray(coords), radius=1))
    corr = np.einsum("bsnc,bshwc->bsnhw", targets, fmaps) / math.sqrt(4)
    for n, (x, y) in enumerate(coords[0, 0].astype(int)):
        for k in range(9):
            # Window entry (i, j) offsets x by i - r and y by j - r; outside the map it reads zero.
            xx, yy = x + k // 3 - 1, y + k % 3 - 1
            inside = 0 <= xx < 7 and 0 <= yy < 6
            np.testing.assert_allclose(out[0, 1, n, k], corr[0, 1, n, yy, xx] if inside else 0.0, atol=1e-14)


def test_tracker_shapes_logits_and_gradients():
    cfg = TrackerConfig(
        stride=2, corr_levels=2, corr_radius=1, latent_dim=8, hidden_size=16, depth=1, num_heads=2, num_virtual_tracks=4
    )
    tracker = BaseTrackerPredictor(cfg)
    fmaps = jax.random.normal(jax.random.PRNGKey(0), (1, 3, 10, 12, 8))
    query = jnp.array([[[3.5, 4.0], [10.0, 12.5]]])
    params = jax.jit(lambda: tracker.init(jax.random.PRNGKey(1), query, fmaps, iters=2))()

    @jax.jit
    def run(p):
        coords, vis, conf = tracker.apply(p, query, fmaps, iters=2)
        _, vis_logits, _ = tracker.apply(p, query, fmaps, iters=2, apply_sigmoid=False)
        grads = jax.grad(lambda p: jnp.sum(tracker.apply(p, query, fmaps, iters=2)[0][-1]))(p)
        return coords, vis, conf, vis_logits, grads

    coords, vis, conf, vis_logits, grads = run(params)
    assert coords.shape == (2, 1, 3, 2, 2) and vis.shape == conf.shape == (1, 3, 2)
    np.testing.assert_array_equal(np.asarray(coords[:, :, 0]), np.broadcast_to(query, (2, 1, 2, 2)))
    np.testing.assert_allclose(np.asarray(jax.nn.sigmoid(vis_logits)), np.asarray(vis), rtol=1e-6)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))
    # Coordinates are detached between iterations, but the last update still trains the flow head.
    assert float(jnp.abs(grads["params"]["updateformer"]["flow_head"]["kernel"]).sum()) > 0


# --- end to end against the tiny fixture -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_track_case(fixture_file):
    with np.load(fixture_file("tiny_s3_112x154_q8.npz")) as f:
        arrays = {k: f[k] for k in f.files if k.startswith(("agg_tokens", "track", "vis", "conf", "query_points"))}
    weights = {k: v for k, v in iter_weights(load_table(fixture_file("tiny_weights.json"))) if k.startswith("track_")}
    return arrays, weights


def run_track_head(case, x64: bool):
    arrays, weights = case
    dtype = np.float64 if x64 else np.float32
    run = "__f64" if x64 else "__f32"
    with jax.enable_x64(x64):
        params = to_params({k: v.astype(dtype) for k, v in weights.items()}, "track_head.")
        tokens = {i: jnp.asarray(layer) for i, layer in enumerate(arrays[f"agg_tokens{run}"])}
        query = jnp.asarray(arrays["query_points"].astype(dtype))[None]
        head = TrackHead(tiny().track_head, dtype, dtype)
        fn = jax.jit(lambda p, t, q: head.apply(p, t, (112, 154), 5, q))
        return [np.asarray(a) for a in fn(params, tokens, query)]


def check_track_outputs(track_list, vis, conf, arrays, x64: bool):
    records = [
        check("track_list[0]", track_list[0], arrays["track_list__f64"][0], x64),
        check("track_list", track_list, arrays["track_list__f64"], x64),
        check("track", track_list[-1], arrays["track__f64"], x64),
        check("vis", vis, arrays["vis__f64"], x64),
        check("conf", conf, arrays["conf__f64"], x64),
    ]
    for r in records:
        print(r)
    failed = [r for r in records if not r["pass"]]
    assert not failed, failed


def test_track_head_float64(tiny_track_case):
    # README bounds; measured on XLA:CPU: track_list[0] 1.4e-14 px, track_list 2.8e-14 px, vis 1.3e-16,
    # conf 1.0e-15, i.e. the float32 islands (flow embedding, sampled pos-embed) round exactly as upstream's.
    track_list, vis, conf = run_track_head(tiny_track_case, x64=True)
    check_track_outputs(track_list, vis, conf, tiny_track_case[0], x64=True)


def test_track_head_float32(tiny_track_case):
    # README bounds; measured: track_list[0] 3.0e-6 px, track max 0.34 px (rmse 0.10), vis 9.1e-3, conf 4.1e-2,
    # the same scale as torch's own float32-vs-float64 gap (0.37 px, 9.2e-3, 2.9e-2): the tracker is chaotic.
    track_list, vis, conf = run_track_head(tiny_track_case, x64=False)
    check_track_outputs(track_list, vis, conf, tiny_track_case[0], x64=False)
