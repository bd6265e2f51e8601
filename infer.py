"""VGGT inference: a folder of photos -> cameras, depth, points and tracks, with exports other tools read.

  python infer.py --images photos/ --hub facebook/VGGT-1B --out recon/
  python infer.py --images photos/ --hub facebook/VGGT-Omega --out recon/   # the successor (gated weights)
  python infer.py --images 'clip.mp4' --fps 2 --checkpoint checkpoints/vggt_1b --out recon/ --track 256
  python infer.py --images photos/ --hub facebook/VGGT-1B --out recon/ --ba        # + bundle adjustment

Outputs (see README.md): predictions.npz, points.ply, scene.glb, sparse/0 (COLMAP, binary) and sparse_txt/0 (text),
transforms.json (nerfstudio), images/, depth/ (16-bit PNG + previews), preview.png, tracks.npz + tracks_overlay.png,
trajectory_tum.txt / trajectory_kitti.txt; with --ba, sparse/0 is the bundle-adjusted model, every camera export uses
its cameras and ba_report.json says how it went. In windows (long sequences), frames/*.npy hold the dense arrays
(memory maps) and windows.json the alignment diagnostics.
"""

from __future__ import annotations

import dataclasses
import sys

from absl import app, flags

from vggt_jax.config import VARIANTS
from vggt_jax.jobs.infer import ALL_EXPORTS, InferOptions, OutputError, run

FLAGS = flags.FLAGS
# One set of defaults: InferOptions' (whose bundle-adjustment and track defaults are reconstruct's own).
D = {f.name: f.default for f in dataclasses.fields(InferOptions) if f.default is not dataclasses.MISSING}
# The flags named otherwise than their InferOptions field.
FLAG_NAMES = {"point_source": "points_from"}
flags.DEFINE_string("images", None, "folder of images, glob pattern, one image or a video file", required=True)
flags.DEFINE_string("out", None, "output folder (must not exist or be empty, unless --overwrite)", required=True)
flags.DEFINE_string("checkpoint", None, "orbax checkpoint dir, or an official model.safetensors / model.pt")
flags.DEFINE_string(
    "exported", None, "an exported model folder (python -m vggt_jax.export) to run instead of a checkpoint"
)
flags.DEFINE_string("hub", None, "Hugging Face Hub id to download instead, e.g. facebook/VGGT-1B")
flags.DEFINE_enum(
    "config", None, sorted(VARIANTS), "variant of a raw .safetensors/.pt checkpoint (default: told from its keys)"
)
flags.DEFINE_enum(
    "mode",
    None,
    ["crop", "pad", "balanced", "max_size"],
    "preprocessing. VGGT: crop to width 518 (default) or pad to 518x518; VGGT-Omega: balanced (default, about "
    "(resolution/16)^2 patches) or max_size (long side = resolution)",
)
flags.DEFINE_integer(
    "image_resolution",
    None,
    "preprocessing size (default: the checkpoint's; VGGT 518 crop width, Omega 512 / 256 text)",
)
flags.DEFINE_enum("dtype", None, ["float32", "bfloat16"], "compute dtype (default: float32 on CPU, bf16 elsewhere)")
flags.DEFINE_float(
    "conf_percentile", D["conf_percentile"], "drop points below this confidence percentile (as the official demos)"
)
flags.DEFINE_enum(
    "points_from", D["point_source"], ["depth", "points"], "point cloud from depth + cameras, or the point head"
)
flags.DEFINE_integer("track", D["track"], "track N query points of frame 0 (0: no tracking)")
flags.DEFINE_enum("track_layout", D["track_layout"], ["grid", "random"], "layout of the --track query points")
flags.DEFINE_string("queries", None, "file of query points (N x 2 pixel x, y in frame 0's original image)")
flags.DEFINE_list("exports", list(ALL_EXPORTS), f"which outputs to write, from {','.join(ALL_EXPORTS)}")
flags.DEFINE_float("fps", D["fps"], "frames per second sampled from a video")
flags.DEFINE_integer("max_frames", None, "at most this many frames from a video")
flags.DEFINE_bool("overwrite", D["overwrite"], "replace a non-empty --out")
flags.DEFINE_bool("ba", D["ba"], "bundle-adjust: tracks from several query frames, pycolmap BA, sparse/0 with tracks")
flags.DEFINE_enum(
    "tracker",
    None,
    ["head", "features", "both"],
    "--ba: the track head, SIFT image features, or both (default: head where the model has one, else features)",
)
flags.DEFINE_string(
    "intrinsics",
    None,
    "known cameras: a COLMAP cameras.txt, a JSON ({fx, fy, cx, cy} shared or per image name; OpenCV pixel "
    "convention) or 'exif' (35 mm focal length); depth rescaled to them, held fixed in --ba, in every export",
)
flags.DEFINE_integer("query_frames", D["query_frames"], "--ba: track from frame 0 and this many minus one more frames")
flags.DEFINE_integer("max_query_points", D["max_query_points"], "--ba: at most this many query points per query frame")
flags.DEFINE_enum(
    "query_method", D["query_method"], ["reorder", "rerun"], "--ba: track head on reordered tokens, or rerun"
)
flags.DEFINE_enum(
    "query_frame_rule", D["query_frame_rule"], ["pose", "uniform"], "--ba: how the extra query frames are chosen"
)
flags.DEFINE_float(
    "vis_threshold", D["vis_threshold"], "--ba: a track position counts where its visibility is at least this"
)
flags.DEFINE_float(
    "max_reproj_error", D["max_reproj_error"], "--ba: observations further than this (original pixels) are dropped"
)
flags.DEFINE_enum(
    "camera_model", D["camera_model"], ["SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL"], "--ba: COLMAP model"
)
flags.DEFINE_bool(
    "shared_camera", D["shared_camera"], "--ba: one camera for every image (one physical camera, one size)"
)
flags.DEFINE_integer("window", None, "long sequences: frames per window (aligned by Sim(3) on the overlap)")
flags.DEFINE_integer("overlap", None, "frames each window shares with the previous one (default: window / 2)")
flags.DEFINE_integer(
    "max_frames_per_pass", None, "more frames than this run in windows of this size (default 128 on CPU, 256 else)"
)
flags.DEFINE_bool(
    "loop_closure", D["loop_closure"], "windows: detect revisits and spread the loop error (Sim(3) pose graph)"
)
flags.DEFINE_bool(
    "shard_frames",
    D["shard_frames"],
    "split each forward's frames over every local device (N devices hold N times the frames)",
)
flags.DEFINE_bool("progress", True, "show a progress bar")
flags.DEFINE_bool("view", False, "after the run, serve the interactive 3D viewer of --out (python -m vggt_jax.view)")
flags.DEFINE_integer("view_port", 8080, "--view: the viewer's port on 127.0.0.1")


def main(argv: list[str]) -> int:
    del argv
    if sum(x is not None for x in (FLAGS.checkpoint, FLAGS.hub, FLAGS.exported)) != 1:
        print("error: give exactly one of --checkpoint, --hub or --exported", file=sys.stderr)
        return 2
    values = {}
    for field in dataclasses.fields(InferOptions):
        name = FLAG_NAMES.get(field.name, field.name)
        if name in FLAGS:
            values[field.name] = FLAGS[name].value
    values["checkpoint"] = FLAGS.checkpoint or FLAGS.hub or ""
    values["exports"] = tuple(FLAGS.exports)
    opts = InferOptions(**values)
    from tqdm import tqdm

    from vggt_jax.convert import ConversionError

    stages = tqdm(total=6 if FLAGS.ba else 5, desc="vggt", unit="step", file=sys.stderr, disable=not FLAGS.progress)

    def progress(message: str) -> None:
        stages.set_description(message)
        stages.update(1 if stages.n < stages.total - 1 else 0)  # windows report a step per window

    try:
        out, pred = run(opts, progress)
    except (ValueError, FileNotFoundError, OutputError, ConversionError, ImportError) as e:
        stages.close()
        print(f"error: {e}", file=sys.stderr)
        return 1
    stages.update(stages.total - stages.n)
    stages.close()
    print(f"wrote {out}: {len(pred.images)} frames, " + ", ".join(sorted(p.name for p in out.iterdir())))
    if not FLAGS.view:
        print(f"view it in a browser: python -m vggt_jax.view {out}   (or add --view)")
        return 0
    from vggt_jax import view

    return view.main([str(out), "--port", str(FLAGS.view_port), "--conf_percentile", str(FLAGS.conf_percentile)])


if __name__ == "__main__":
    app.run(main)
