"""Fine-tune VGGT-1B with the official recipe (training/config/default.yaml of facebookresearch/vggt).

    python -m vggt_jax.convert --hub facebook/VGGT-1B --out checkpoints/vggt_1b
    python train.py --config configs/train_vggt_1b.py:init_from=checkpoints/vggt_1b --workdir runs/ft \\
        --config.data.source.kind=co3d --config.data.source.path=/data/co3d

Recipe: 518 px wide images, 2-24 frames per scene, up to 48 images per device (``images_per_device``), camera and
depth heads (point and track off), the aggregator frozen, AdamW lr 5e-5 with weight decay 0.05 on every parameter,
5% linear warm-up from 1e-8 then cosine to 1e-8 over 20 x 800 steps, gradients clipped to norm 1.0 per module
group, bfloat16 compute with float32 master weights. Parameters and optimiser state are FSDP-sharded over every
device (``mesh.fsdp=-1``). Arguments (``:key=value,...``): init_from, steps, remat (none | full | dots), freeze
(the aggregator; False trains everything, as the paper's from-scratch training), heads (e.g. camera+depth+point).
"""

from vggt_jax.train.config import base_config, parse_arg


def get_config(arg: str | None = None):
    arg = parse_arg(arg, init_from="", steps=16000, remat="full", freeze=True, heads="camera+depth")
    c = base_config()
    c.total_steps = arg.steps  # max_epochs 20 x limit_train_batches 800
    c.log_every = 50
    c.ckpt_every = 800  # an upstream epoch
    c.eval_every = 0  # held-out evaluation needs a held-out dataset: set config.eval.* and eval_every
    c.init_from = arg.init_from

    c.mesh.update(data=1, fsdp=-1, tensor=1)
    c.model.update(variant="vggt_1b", heads=tuple(arg.heads.split("+")), dtype="bfloat16", remat=arg.remat)
    # The blocks under one scan: XLA schedules one rematerialised layer at a time (the unrolled 24 layers measured
    # 6x the activation memory in the AOT check, 758 vs 123 GiB) and compiles several times faster.
    c.model.scan_layers = True
    # The dense heads run 8 frames per device at a time (upstream's frames_chunk_size), each chunk rematerialised:
    # their full-resolution activations exist for one chunk instead of all 48 images.
    c.model.heads_frames_chunk = 8

    c.optim.update(lr=5e-5, init_lr=1e-8, end_lr=1e-8, warmup_frac=0.05, weight_decay=0.05)
    c.optim.frozen = ("^aggregator/",) if arg.freeze else ()

    # The data defaults are the official ones: 518 px, 2-24 frames, aspect ratios 0.5-1.
    c.images_per_device = 48  # max_img_per_gpu
    return c
