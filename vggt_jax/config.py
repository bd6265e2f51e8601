"""Model architecture as frozen dataclasses, with the official variants.

Every constructor argument that the official modules take (including the track head's feature extractor and
tracker sizes, which upstream's ``TrackHead`` hard-codes) is a field here, so a fixture model or a fine-tuned
variant is described by data, not by code.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

# DINOv2 ViT sizes as built by upstream's vit_small/base/large/giant2 factories (all with an MLP FFN).
DINO_VARIANTS = {
    "dinov2_vits14_reg": dict(embed_dim=384, depth=12, num_heads=6),
    "dinov2_vitb14_reg": dict(embed_dim=768, depth=12, num_heads=12),
    "dinov2_vitl14_reg": dict(embed_dim=1024, depth=24, num_heads=16),
    "dinov2_vitg2_reg": dict(embed_dim=1536, depth=40, num_heads=24),
    # Not a DINOv2 release: the smallest ViT of this shape, for tests and CPU smoke runs (``micro()``).
    "micro_vit14_reg": dict(embed_dim=32, depth=1, num_heads=2),
    # DINOv3 ViT-L/16 with 4 storage tokens, as VGGT-Omega builds it (``_build_patch_embed``).
    "dinov3_vitl16": dict(embed_dim=1024, depth=24, num_heads=16),
    # The Omega fixture model's DINOv3 (shared/fixtures/omega/omega_tiny_config.json) and a smaller smoke-test one.
    "omega_tiny_vit16": dict(embed_dim=128, depth=3, num_heads=2),
    "micro_vit16": dict(embed_dim=32, depth=1, num_heads=2),
}


@dataclasses.dataclass(frozen=True)
class DinoConfig:
    """The DINO ViT patch embedder (``aggregator.patch_embed``): DINOv2 with a learned position embedding (VGGT), or
    DINOv3 (VGGT-Omega) when ``rope_base`` > 0: axial RoPE on the patch tokens instead of a position embedding, its
    "storage tokens" in the place of DINOv2's registers (``num_register_tokens``), and masked k-biases."""

    variant: str = "dinov2_vitl14_reg"
    img_size: int = 518
    patch_size: int = 14
    num_register_tokens: int = 4
    mlp_ratio: float = 4.0
    init_values: float = 1.0
    layernorm_eps: float = 1e-6
    rope_base: float = 0.0
    mask_k_bias: bool = False

    @property
    def embed_dim(self) -> int:
        return DINO_VARIANTS[self.variant]["embed_dim"]

    @property
    def depth(self) -> int:
        return DINO_VARIANTS[self.variant]["depth"]

    @property
    def num_heads(self) -> int:
        return DINO_VARIANTS[self.variant]["num_heads"]

    @property
    def grid_size(self) -> int:
        """Side of the square patch grid the learned position embedding was trained for (37 for 518/14)."""
        return self.img_size // self.patch_size


@dataclasses.dataclass(frozen=True)
class AggregatorConfig:
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_register_tokens: int = 4
    qk_norm: bool = True
    rope_freq: float = 100.0
    init_values: float = 0.01
    aa_order: tuple[str, ...] = ("frame", "global")
    aa_block_size: int = 1
    patch_embed: DinoConfig = DinoConfig()
    # RoPE of the frame blocks: "vggt" (integer (y, x) positions, applied to every token, global blocks too) or
    # "axial" (VGGT-Omega: DINOv3's axial RoPE on the patch tokens of frame blocks only, in float32).
    rope_style: str = "vggt"
    # VGGT-Omega: the global blocks of these layers attend over the special tokens of all frames only ("register
    # attention"); the patch tokens skip them.
    register_attention_layers: tuple[int, ...] = ()
    # LinearKMaskedBias (VGGT-Omega): the k third of every qkv bias is ignored.
    mask_k_bias: bool = False
    # Parameter layout of the transformer blocks (the aggregator's frame/global blocks and its DINOv2's blocks):
    # True (the default) runs them under ``nn.scan`` with parameters stacked on a leading layer axis
    # (``frame_blocks/...`` [depth, ...]), so compile time does not grow with depth (the 1B forward: 11-12 s against
    # 16-21 s unrolled, the same run time); False unrolls them (``frame_blocks_3/...``, the official module tree).
    # The same function either way; ``vggt_jax.model.layout`` converts the params, the converter writes either.
    scan_layers: bool = True
    # The MLPs of these blocks run over this many tokens at a time (``vggt_jax.model.layers.mlp_rows_scope``): at 8
    # frames of VGGT-Omega 1B 4.5% faster and 0.04 GB less peak memory on CPU than all at once (0). The tracker's and
    # the heads' small MLPs run all at once, where a scan costs more than it saves.
    mlp_rows_chunk: int = 1024


@dataclasses.dataclass(frozen=True)
class CameraHeadConfig:
    """VGGT's AdaLN-modulated iterative refinement over the camera tokens; in the ``vggt_omega`` family, VGGT-Omega's
    single pass with its trunk over the camera and register tokens of all frames (masked k-biases, FoV
    ``relu(x) + 0.01``), where ``num_iterations`` and the activations do not apply."""

    dim_in: int = 2048
    trunk_depth: int = 4
    num_heads: int = 16
    mlp_ratio: float = 4.0
    init_values: float = 0.01
    num_iterations: int = 4
    trans_act: str = "linear"
    quat_act: str = "linear"
    fl_act: str = "relu"


@dataclasses.dataclass(frozen=True)
class DPTHeadConfig:
    dim_in: int = 2048
    patch_size: int = 14
    output_dim: int = 4
    activation: str = "inv_log"
    conf_activation: str = "expp1"
    features: int = 256
    out_channels: tuple[int, ...] = (256, 512, 1024, 1024)
    intermediate_layer_idx: tuple[int, ...] = (4, 11, 17, 23)
    pos_embed: bool = True
    feature_only: bool = False
    down_ratio: int = 1
    # "conv": VGGT's output_conv1/2 after a bilinear upsampling to full resolution. "pixel_shuffle": VGGT-Omega's
    # dense head, 1x1 ``proj`` / ``proj_conf`` convs at 1/4 resolution, each to 16 channels that pixel_shuffle(4)
    # turns into one full-resolution channel (the prediction and its confidence).
    output: str = "conv"
    # VGGT's ResidualConvUnit ReLU is in-place, so its skip adds relu(x); VGGT-Omega's is not (the skip adds x).
    inplace_relu: bool = True


@dataclasses.dataclass(frozen=True)
class TrackerConfig:
    """``BaseTrackerPredictor`` + its ``EfficientUpdateFormer``."""

    stride: int = 2
    corr_levels: int = 7
    corr_radius: int = 4
    latent_dim: int = 128
    hidden_size: int = 384
    use_spaceatt: bool = True
    depth: int = 6
    max_scale: int = 518
    predict_conf: bool = True
    num_heads: int = 8
    mlp_ratio: float = 4.0
    num_virtual_tracks: int = 64


@dataclasses.dataclass(frozen=True)
class TrackHeadConfig:
    iters: int = 4
    feature_extractor: DPTHeadConfig = DPTHeadConfig(features=128, feature_only=True, down_ratio=2, pos_embed=False)
    tracker: TrackerConfig = TrackerConfig()


@dataclasses.dataclass(frozen=True)
class TextHeadConfig:
    """VGGT-Omega's text-alignment head: a language token read out over the special tokens of all frames."""

    dim_in: int = 2048
    depth: int = 4
    num_heads: int = 16
    mlp_ratio: float = 4.0
    init_values: float = 1e-5


FAMILIES = ("vggt", "vggt_omega")


@dataclasses.dataclass(frozen=True)
class VGGTConfig:
    """The whole model. ``dtype`` is the compute dtype of the aggregator and track head; the camera, depth and
    point heads always compute in ``head_dtype`` (float32 unless float64 is asked for), as upstream runs them with
    autocast disabled. ``param_dtype`` is the dtype of the parameters the model creates (conversion may write
    another). ``remat`` trades compute for activation memory in training."""

    name: str = "vggt_1b"
    # "vggt" or "vggt_omega" (the successor: DINOv3, register attention, no point or track head); the checkpoint's
    # config.json records it, so loading needs no flag.
    family: str = "vggt"
    aggregator: AggregatorConfig = AggregatorConfig()
    camera_head: CameraHeadConfig | None = CameraHeadConfig()
    depth_head: DPTHeadConfig | None = DPTHeadConfig(output_dim=2, activation="exp")
    point_head: DPTHeadConfig | None = DPTHeadConfig(output_dim=4, activation="inv_log")
    track_head: TrackHeadConfig | None = TrackHeadConfig()
    text_head: TextHeadConfig | None = None
    dtype: str = "float32"
    head_dtype: str = "float32"
    param_dtype: str = "float32"
    # Rematerialisation of the aggregator's and DINOv2's transformer blocks and of the dense heads' chunks of frames
    # (``heads_frames_chunk``) (training memory; no numerical effect): "none", "full" (keep only each block's or
    # chunk's input) or "dots" (also keep the dense layers' outputs).
    remat: str = "none"
    # How the forward pass is executed; none of these changes the function computed beyond float round-off.
    # ``attention``: "auto" (fused cuDNN / splash kernels on GPU / TPU where they apply, else chunked online-softmax
    # attention for long sequences and the reference for short ones), "xla" (the reference everywhere), "chunked",
    # "cudnn" or "splash" (vggt_jax.model.attention); the chunks bound its logits tile per head.
    attention: str = "auto"
    attention_q_chunk: int = 256
    attention_kv_chunk: int = 512
    # The dense heads (depth, point, track features) run over this many frames at a time; 0 runs all at once.
    heads_frames_chunk: int = 1
    # The image size the weights were trained at, which inference preprocesses to: VGGT's crop width / pad side
    # (a multiple of 14), VGGT-Omega's resolution. None: the official checkpoints' (518; Omega 512, text model 256).
    image_resolution: int | None = None

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"unknown model family {self.family!r}; choose one of {FAMILIES}")

    @property
    def patch_size(self) -> int:
        return self.aggregator.patch_embed.patch_size

    @property
    def patch_start_idx(self) -> int:
        """Index of the first patch token of a frame: after the camera token and the registers."""
        return 1 + self.aggregator.num_register_tokens

    def replace(self, **kwargs: Any) -> VGGTConfig:
        return dataclasses.replace(self, **kwargs)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, d: dict) -> VGGTConfig:
        return _from_dict(cls, d)

    @classmethod
    def from_json(cls, text: str) -> VGGTConfig:
        return cls.from_dict(json.loads(text))


def _from_dict(cls, d):
    if d is None:
        return None
    kwargs = {}
    hints = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(d) - set(hints)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {sorted(unknown)}; the config was written by another version")
    for name, value in d.items():
        default = hints[name].default
        sub = type(default) if dataclasses.is_dataclass(default) else _SUBCONFIGS.get((cls.__name__, name))
        if sub is not None and isinstance(value, dict):
            kwargs[name] = _from_dict(sub, value)
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


# Fields whose default may be None, so their type cannot be read off the default.
_SUBCONFIGS = {
    ("VGGTConfig", "camera_head"): CameraHeadConfig,
    ("VGGTConfig", "depth_head"): DPTHeadConfig,
    ("VGGTConfig", "point_head"): DPTHeadConfig,
    ("VGGTConfig", "track_head"): TrackHeadConfig,
    ("VGGTConfig", "text_head"): TextHeadConfig,
}


def vggt_1b() -> VGGTConfig:
    """``VGGT()`` with the official defaults (facebook/VGGT-1B)."""
    return VGGTConfig()


def tiny() -> VGGTConfig:
    """The 49M-parameter fixture model of ``shared/fixtures/tiny_config.json``."""
    dpt = dict(dim_in=768, features=64, out_channels=(32, 64, 128, 128), intermediate_layer_idx=(0, 1, 2, 3))
    return VGGTConfig(
        name="tiny",
        aggregator=AggregatorConfig(
            embed_dim=384, depth=4, num_heads=6, patch_embed=DinoConfig(variant="dinov2_vits14_reg")
        ),
        camera_head=CameraHeadConfig(dim_in=768, trunk_depth=1, num_heads=6),
        depth_head=DPTHeadConfig(output_dim=2, activation="exp", **dpt),
        point_head=DPTHeadConfig(output_dim=4, activation="inv_log", **dpt),
        track_head=TrackHeadConfig(
            iters=4,
            feature_extractor=DPTHeadConfig(
                dim_in=768,
                features=32,
                out_channels=(32, 64, 128, 128),
                intermediate_layer_idx=(0, 1, 2, 3),
                feature_only=True,
                down_ratio=2,
                pos_embed=False,
            ),
            tracker=TrackerConfig(stride=2, corr_levels=3, corr_radius=2, latent_dim=32, hidden_size=64, depth=2),
        ),
    )


def micro() -> VGGTConfig:
    """A ~0.2M-parameter model with every component of VGGT, for tests and CPU smoke runs: it compiles a train step
    in seconds where ``tiny`` takes minutes. No weights exist for it."""
    dpt = dict(dim_in=64, features=16, out_channels=(8, 16, 16, 16), intermediate_layer_idx=(0, 1, 1, 1))
    return VGGTConfig(
        name="micro",
        aggregator=AggregatorConfig(
            embed_dim=32, depth=2, num_heads=2, patch_embed=DinoConfig(variant="micro_vit14_reg")
        ),
        camera_head=CameraHeadConfig(dim_in=64, trunk_depth=1, num_heads=2),
        depth_head=DPTHeadConfig(output_dim=2, activation="exp", **dpt),
        point_head=DPTHeadConfig(output_dim=4, activation="inv_log", **dpt),
        track_head=TrackHeadConfig(
            iters=2,
            feature_extractor=DPTHeadConfig(
                dim_in=64,
                features=8,
                out_channels=(8, 8, 8, 8),
                intermediate_layer_idx=(0, 1, 1, 1),
                feature_only=True,
                down_ratio=2,
                pos_embed=False,
            ),
            tracker=TrackerConfig(
                stride=2,
                corr_levels=2,
                corr_radius=1,
                latent_dim=8,
                hidden_size=16,
                depth=1,
                num_heads=2,
                num_virtual_tracks=4,
            ),
        ),
    )


def _omega(
    name: str,
    dino: DinoConfig,
    aggregator: dict,
    camera: dict,
    dense: dict,
    text: TextHeadConfig | None,
) -> VGGTConfig:
    return VGGTConfig(
        name=name,
        family="vggt_omega",
        aggregator=AggregatorConfig(
            patch_embed=dino,
            mlp_ratio=4.0,
            qk_norm=True,
            rope_freq=100.0,
            init_values=1e-5,
            rope_style="axial",
            mask_k_bias=True,
            **aggregator,
        ),
        camera_head=CameraHeadConfig(init_values=1e-5, num_iterations=1, **camera),
        depth_head=DPTHeadConfig(
            patch_size=16, output_dim=2, activation="exp", output="pixel_shuffle", inplace_relu=False, **dense
        ),
        point_head=None,
        track_head=None,
        text_head=text,
    )


def _dinov3(variant: str) -> DinoConfig:
    return DinoConfig(
        variant=variant,
        img_size=224,
        patch_size=16,
        num_register_tokens=4,
        init_values=1e-5,
        layernorm_eps=1e-5,
        rope_base=100.0,
        mask_k_bias=True,
    )


_OMEGA_1B = dict(
    aggregator=dict(
        embed_dim=1024, depth=24, num_heads=16, num_register_tokens=16, register_attention_layers=(2, 6, 9, 14, 20)
    ),
    camera=dict(dim_in=2048, trunk_depth=4, num_heads=16),
    dense=dict(dim_in=2048, features=256, out_channels=(256, 512, 1024, 1024), intermediate_layer_idx=(4, 11, 17, 23)),
)


def vggt_omega_1b() -> VGGTConfig:
    """``VGGTOmega()``: the ``vggt_omega_1b_512.pt`` checkpoint of facebook/VGGT-Omega (1,143,814,185 params)."""
    return _omega("vggt_omega_1b", _dinov3("dinov3_vitl16"), text=None, **_OMEGA_1B)


def vggt_omega_1b_text() -> VGGTConfig:
    """``VGGTOmega(enable_alignment=True)``: the ``vggt_omega_1b_256_text.pt`` checkpoint (1,349,473,321 params),
    meant for ``image_resolution=256``."""
    return _omega("vggt_omega_1b_text", _dinov3("dinov3_vitl16"), text=TextHeadConfig(), **_OMEGA_1B)


def omega_tiny() -> VGGTConfig:
    """The 5.25M-parameter Omega fixture model of ``shared/fixtures/omega/omega_tiny_config.json``."""
    return _omega(
        "omega_tiny",
        _dinov3("omega_tiny_vit16"),
        aggregator=dict(embed_dim=128, depth=4, num_heads=4, num_register_tokens=16, register_attention_layers=(0, 2)),
        camera=dict(dim_in=256, trunk_depth=1, num_heads=16),
        dense=dict(dim_in=256, features=32, out_channels=(32, 64, 96, 128), intermediate_layer_idx=(0, 1, 2, 3)),
        text=TextHeadConfig(dim_in=256, depth=2, num_heads=16),
    )


def omega_micro() -> VGGTConfig:
    """The smallest model with every component of VGGT-Omega (register attention included), for tests and CPU
    smoke runs of training. No weights exist for it."""
    return _omega(
        "omega_micro",
        _dinov3("micro_vit16"),
        aggregator=dict(embed_dim=32, depth=2, num_heads=2, num_register_tokens=4, register_attention_layers=(0,)),
        camera=dict(dim_in=64, trunk_depth=1, num_heads=2),
        dense=dict(dim_in=64, features=16, out_channels=(8, 16, 16, 16), intermediate_layer_idx=(0, 1, 1, 1)),
        text=None,
    )


VARIANTS = {
    "vggt_1b": vggt_1b,
    "tiny": tiny,
    "micro": micro,
    "vggt_omega_1b": vggt_omega_1b,
    "vggt_omega_1b_text": vggt_omega_1b_text,
    "omega_tiny": omega_tiny,
    "omega_micro": omega_micro,
}


def get_config(name: str) -> VGGTConfig:
    if name not in VARIANTS:
        raise ValueError(f"unknown model config {name!r}; choose one of {sorted(VARIANTS)}")
    return VARIANTS[name]()
