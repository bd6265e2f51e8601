"""Train the micro model from scratch on procedural synthetic scenes: runs on a laptop CPU in minutes.

    python train.py --config configs/train_synthetic.py --workdir /tmp/run
    python train.py --config configs/train_synthetic.py:model=micro,steps=20,size=28 --workdir /tmp/smoke  # seconds

Arguments (``:key=value,...``): model (micro | tiny | omega_micro), steps, size (image side, a multiple of the patch
size: 14, or 16 for Omega), frames per scene,
batch (scenes per step), tracks (also train the track head), freeze (freeze the aggregator, as the official
fine-tuning recipe does). One batch shape, so one compiled program.

What makes the camera learnable from random init in this budget (README, Training): two-frame ``turn`` scenes (the
camera swings 20-60 degrees about an axis behind it), lr 2e-3 and no frame repeated within a sample. With lr 5e-4,
or with frames drawn with replacement (upstream's default, which from small synthetic scenes makes many samples of
one frame twice), the camera head settles on the average pose whatever the images. Wider tasks (all trajectories:
``--config.data.source.trajectories="('orbit','dolly','pan','turn','random')"``, ``:frames=4``) do not leave
the average pose in minutes.
"""

from vggt_jax.train.config import base_config, parse_arg


def get_config(arg: str | None = None):
    arg = parse_arg(arg, model="micro", steps=3000, size=56, frames=2, batch=8, tracks=False, freeze=False)
    c = base_config()
    c.total_steps = arg.steps
    c.log_every = 10
    c.eval_every = max(arg.steps // 6, 1)
    c.ckpt_every = max(arg.steps // 3, 1)

    c.model.variant = arg.model
    c.model.heads = ("camera", "depth", "point", "track") if arg.tracks else ("camera", "depth", "point")

    c.optim.lr = 2e-3
    c.optim.warmup_frac = 0.05
    c.optim.weight_decay = 0.05
    c.optim.frozen = ("^aggregator/",) if arg.freeze else ()

    c.data.img_size = arg.size
    c.data.aspect_ratios = (1.0,)
    c.data.num_frames = (arg.frames, arg.frames)
    c.data.frame_buckets = (arg.frames,)
    c.data.allow_duplicate_frames = False
    c.data.max_images_per_batch = arg.batch * arg.frames
    c.data.num_tracks = 32
    c.data.source.update(num_scenes=512, frames_per_scene=arg.frames, height=72, width=96, trajectories=("turn",))

    c.eval.num_batches = 16
    c.eval.data.num_frames = (arg.frames, arg.frames)
    c.eval.data.frame_buckets = (arg.frames,)
    c.eval.source.num_scenes = 64
    return c
