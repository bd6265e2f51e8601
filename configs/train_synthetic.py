"""Train the tiny model from scratch on procedural synthetic scenes: runs on a laptop CPU in minutes.

    python train.py --config configs/train_synthetic.py --workdir /tmp/run
    python train.py --config configs/train_synthetic.py:model=micro,steps=20,size=28 --workdir /tmp/smoke  # seconds

Arguments (``:key=value,...``): model (tiny | micro), steps, size (image side, a multiple of 14), frames per scene,
batch (scenes per step), tracks (also train the track head), freeze (freeze the aggregator, as the official
fine-tuning recipe does). One batch shape, so one compiled program.
"""

from vggt_jax.train.config import base_config, parse_arg


def get_config(arg: str | None = None):
    arg = parse_arg(arg, model="tiny", steps=600, size=56, frames=4, batch=4, tracks=False, freeze=False)
    c = base_config()
    c.total_steps = arg.steps
    c.log_every = 10
    c.eval_every = max(arg.steps // 6, 1)
    c.ckpt_every = max(arg.steps // 3, 1)

    c.model.variant = arg.model
    c.model.heads = ("camera", "depth", "point", "track") if arg.tracks else ("camera", "depth", "point")

    c.optim.lr = 5e-4
    c.optim.warmup_frac = 0.05
    c.optim.weight_decay = 0.05
    c.optim.frozen = ("^aggregator/",) if arg.freeze else ()

    c.data.img_size = arg.size
    c.data.aspect_ratios = (1.0,)
    c.data.num_frames = (arg.frames, arg.frames)
    c.data.frame_buckets = (arg.frames,)
    c.data.max_images_per_batch = arg.batch * arg.frames
    c.data.num_tracks = 32
    c.data.source.update(num_scenes=512, frames_per_scene=8, height=72, width=96)

    c.eval.num_batches = 16
    c.eval.data.num_frames = (arg.frames, arg.frames)
    c.eval.data.frame_buckets = (arg.frames,)
    c.eval.source.num_scenes = 64
    return c
