"""Fine-tune converted VGGT-1B weights on your own data: the official frozen-aggregator recipe
(``configs/train_vggt_1b.py``) with the paper's sensor and lens augmentations, over one or several dataset folders.

    python -m vggt_jax.convert --hub facebook/VGGT-1B --out checkpoints/vggt_1b
    python train.py --config configs/finetune.py:init_from=checkpoints/vggt_1b,data=folder:/data/captures \\
        --workdir runs/finetune
    # several sources, mixed by weight (kind:path:weight, joined by +):
    #   data=scannet:/data/scannet/scans:2+megadepth:/data/MegaDepth_v1:1+co3d:/data/co3d:1

Dry run on a CPU (the demo checkpoint: micro model, small images, a few steps; checkpoint and resume as a real run):

    python train.py --workdir /tmp/finetune \\
        --config configs/finetune.py:init_from=examples/demo_micro,model=micro,size=56,steps=4,data=folder:DIR

Layouts (``kind``; vggt_jax/data/readers has each one's format): folder (your captures: images + depths + poses +
intrinsics), colmap, co3d, scannet, megadepth, replica, tfds, synthetic. Arguments (``:key=value,...``): init_from,
data, model (the checkpoint's variant), size (image width), frames (max frames per sample), steps, heads, freeze
(the aggregator), augs (False: the official trainer's augmentations only). Data settings the arguments do not cover
are fields of ``config.data`` (e.g. ``--config.data.augs.blur_p=0.5``).

Augmentations on top of the official ones (colour jitter, grey, scale/aspect crops): exposure changes on half the
frames (+-1 stop, gamma 0.8-1.25, per frame as auto-exposure), motion blur on a quarter (3-12 px), a radially
distorted lens on a quarter of the scenes (|k1| <= 0.15, |k2| <= 0.03; the ground truth follows the lens). The
principal-point shift stays off: the camera head predicts field of view only, so an off-centre principal point would
be a target it cannot express.
"""

from configs.train_vggt_1b import get_config as official_recipe
from vggt_jax.data import config as data_config
from vggt_jax.train.config import parse_arg


def parse_sources(spec: str) -> list[tuple[str, str, float]]:
    """``"kind:path[:weight]+..."`` -> ``[(kind, path, weight)]``."""
    out = []
    for item in filter(None, spec.split("+")):
        parts = item.split(":")
        if len(parts) not in (2, 3) or not parts[1]:
            raise ValueError(f"data={spec!r}: each source is kind:path or kind:path:weight, got {item!r}")
        kind, path = parts[0], parts[1]
        if kind not in data_config.SOURCE_KINDS:
            raise ValueError(f"data={spec!r}: unknown kind {kind!r}; kinds: {data_config.SOURCE_KINDS}")
        out.append((kind, path, float(parts[2]) if len(parts) == 3 else 1.0))
    if not out:
        raise ValueError("configs/finetune.py needs data=kind:path[:weight][+...] (e.g. data=folder:/data/captures)")
    return out


def get_config(arg: str | None = None):
    arg = parse_arg(
        arg,
        init_from="",
        data="",
        model="vggt_1b",
        size=518,
        frames=24,
        steps=16000,
        heads="camera+depth",
        freeze=True,
        augs=True,
    )
    c = official_recipe(f"init_from={arg.init_from},steps={arg.steps},heads={arg.heads},freeze={arg.freeze}")
    c.model.variant = arg.model
    if arg.model != "vggt_1b":  # a dry run: small model, float32, small budget
        c.model.update(dtype="float32", remat="none", heads_frames_chunk=0)
        c.images_per_device = 0
        c.data.max_images_per_batch = 2 * arg.frames
        c.ckpt_every = max(arg.steps // 2, 1)
        c.log_every = 1
    c.data.img_size = arg.size
    c.data.num_frames = (2, arg.frames)
    c.data.frame_buckets = tuple(sorted({b for b in (2, 4, 8, 16, 24) if b < arg.frames} | {arg.frames}))
    if arg.augs:
        c.data.augs.update(data_config.PAPER_AUGS)
    sources = parse_sources(arg.data) if arg.data else []
    if len(sources) == 1:
        kind, path, _ = sources[0]
        c.data.source.update(kind=kind, path=path)
    for i, (kind, path, weight) in enumerate(sources if len(sources) > 1 else []):
        data_config.add_source(c.data, f"{i}_{kind}", weight=weight, kind=kind, path=path)
    return c
