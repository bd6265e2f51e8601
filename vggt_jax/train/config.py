"""The training config: every field a run reads, with defaults; experiments in ``configs/`` override it.

``python train.py --config configs/train_synthetic.py:arg --config.optim.lr=1e-4 --workdir DIR``.
"""

from __future__ import annotations

import ml_collections

# Upstream's GradientClipper groups (default.yaml), one global norm each, first match wins; extended with the
# point and track heads so every head a config enables is covered.
OFFICIAL_CLIP_GROUPS = (
    ("aggregator", r"^aggregator/", 1.0),
    ("depth", r"^depth_head/", 1.0),
    ("camera", r"^camera_head/", 1.0),
    ("point", r"^point_head/", 1.0),
    ("track", r"^track_head/", 1.0),
)


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
    """``"a=1,b=x,flag"`` -> ConfigDict over ``defaults`` (values typed like the defaults), big_vision style."""
    out = ml_collections.ConfigDict(defaults)
    for item in filter(None, (arg or "").split(",")):
        key, _, value = item.partition("=")
        if key not in defaults:
            raise ValueError(f"unknown config argument {key!r}; known: {sorted(defaults)}")
        kind = type(defaults[key])
        out[key] = (value.lower() in ("", "1", "true", "yes")) if kind is bool else kind(value)
    return out


def base_config() -> ml_collections.ConfigDict:
    from vggt_jax.data import get_config as data_config

    c = ml_collections.ConfigDict()
    c.seed = 0
    c.total_steps = 1000
    c.log_every = 10
    c.eval_every = 0  # 0: no evaluation
    c.ckpt_every = 500
    c.ckpt_keep = 3
    c.async_checkpoint = True
    c.init_from = ""  # a converted checkpoint (python -m vggt_jax.convert ... --out DIR); "" = random init
    c.sharding_tolerance = 0.02  # assert_params_sufficiently_sharded
    # > 0: each process's image budget (data.max_images_per_batch) is this many images per local data-parallel
    # device, as upstream's max_img_per_gpu; 0 keeps data.max_images_per_batch.
    c.images_per_device = 0

    c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))
    c.distributed = ml_collections.ConfigDict(dict(coordinator_address="", num_processes=0, process_id=-1, auto=False))

    c.model = ml_collections.ConfigDict(
        dict(
            variant="vggt_1b",
            heads=("camera", "depth", "point", "track"),
            dtype="float32",
            remat="none",
            attention="auto",
            # > 0: the dense heads run over this many frames per device at a time (a scan). With remat each chunk is
            # rematerialised, so the backward pass keeps one chunk's full-resolution activations; without it, every
            # chunk's. 0: all frames at once.
            heads_frames_chunk=0,
            # The transformer blocks under nn.scan with stacked params (compile time independent of depth).
            scan_layers=False,
        )
    )

    c.optim = ml_collections.ConfigDict(
        dict(
            lr=5e-5,
            init_lr=1e-8,
            end_lr=1e-8,
            warmup_frac=0.05,
            b1=0.9,
            b2=0.999,
            eps=1e-8,
            weight_decay=0.05,
            no_weight_decay=(),  # upstream decays every parameter
            frozen=(),
            clip_groups=OFFICIAL_CLIP_GROUPS,
            accum_steps=1,
        )
    )

    c.loss = ml_collections.ConfigDict()
    # A term applies when the model has the head; weights and arguments as upstream's MultitaskLoss.
    c.loss.camera = dict(weight=5.0, loss_type="l1", gamma=0.6, weight_trans=1.0, weight_rot=1.0, weight_focal=0.5)
    c.loss.depth = dict(weight=1.0, gradient_loss_fn="grad", valid_range=0.98, gamma=1.0, alpha=0.2)
    c.loss.point = dict(weight=1.0, gradient_loss_fn="normal", valid_range=0.98, gamma=1.0, alpha=0.2)
    # The paper's lambda = 0.05 for tracking; upstream ships no track loss.
    c.loss.track = dict(weight=0.05, gamma=0.8, vis_weight=1.0, conf_weight=1.0)
    c.loss.group_size = 0  # 0: one loss group per data-parallel shard (a DDP worker's local batch)
    c.loss.normalize_gt = False  # vggt_jax.data normalises the ground truth itself

    c.data = data_config()
    c.eval = ml_collections.ConfigDict(
        dict(
            num_batches=4,
            seed=12345,
            # Held-out scenes: another synthetic source seed (so other rooms), no augmentation, one shape.
            data=dict(num_frames=(4, 4), frame_buckets=(4,), aspect_ratios=(1.0,), allow_duplicate_frames=False),
            source=dict(seed=99991),
        )
    )
    return c
