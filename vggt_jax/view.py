"""``python -m vggt_jax.view OUT_DIR``: an interactive 3D page of an ``infer.py`` reconstruction, served by viser.

The page shows the coloured point cloud (depth unprojected with the cameras, or the point head's map), one frustum
per camera with its image, a confidence-percentile slider, a frame-range filter, a points-from switch and, after
``--ba``, a switch between the bundle-adjusted and the feed-forward cameras. It reads ``OUT/predictions.npz`` (and,
after a windowed run, the memory-mapped ``OUT/frames/*.npy``), a frame at a time, keeping at most ``max_points``
points. Open the printed address in a browser; ``infer.py --view`` serves it right after a run.
"""

from __future__ import annotations

import argparse
import colorsys
import dataclasses
import sys
from pathlib import Path

import numpy as np

DENSE_KEYS = ("images", "depth", "depth_conf", "world_points", "world_points_conf")


class ViewError(ValueError):
    """A folder the viewer cannot show; the message names the problem and the fix."""


@dataclasses.dataclass
class Samples:
    """The points the page can show: per point its frame, colour, confidence and position for each source."""

    frame: np.ndarray  # [N] int
    rgb: np.ndarray  # [N, 3] uint8
    conf: dict[str, np.ndarray]  # source -> [N]
    xyz: dict[str, dict[str, np.ndarray]]  # cameras -> source -> [N, 3]


@dataclasses.dataclass
class Reconstruction:
    names: list[str]
    thumbnails: list[np.ndarray]  # [h, w, 3] uint8 per frame
    hw: tuple[int, int]  # model-input (H, W)
    cameras: dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (extrinsic [S,3,4], intrinsic [S,3,3])
    samples: Samples

    @property
    def num_frames(self) -> int:
        return len(self.names)


def frame_colors(count: int) -> np.ndarray:
    """``[count, 3]`` uint8: one saturated hue per frame, evenly spaced, for the frustums."""
    return np.array(
        [[round(255 * c) for c in colorsys.hsv_to_rgb(i / max(count, 1), 0.9, 1.0)] for i in range(count)], np.uint8
    )


def _arrays(out_dir: Path) -> dict[str, np.ndarray]:
    npz = out_dir / "predictions.npz"
    if not npz.is_file():
        raise ViewError(
            f"{out_dir} has no predictions.npz: give an infer.py --out folder written with the npz export "
            "(the default; --exports must include npz)"
        )
    with np.load(npz, allow_pickle=False) as f:
        arrays = {key: f[key] for key in f.files}
    for key in DENSE_KEYS:  # a windowed run keeps the dense arrays in frames/*.npy
        path = out_dir / "frames" / f"{key}.npy"
        if key not in arrays and path.is_file():
            arrays[key] = np.load(path, mmap_mode="r")
    missing = [k for k in ("images", "depth", "extrinsic", "intrinsic") if k not in arrays]
    if missing:
        raise ViewError(f"{npz} lacks {missing}; rerun infer.py with this version to write them")
    return arrays


def load_reconstruction(out_dir: str | Path, max_points: int = 400_000, seed: int = 0) -> Reconstruction:
    """What the page shows, from an ``infer.py`` output folder: at most ``max_points`` points (an equal share per
    frame, drawn uniformly among its pixels with a finite depth), frame thumbnails and every set of cameras."""
    from vggt_jax.geometry import depth_to_world_points

    arrays = _arrays(Path(out_dir))
    images, depth = arrays["images"], arrays["depth"]
    num, height, width = depth.shape[:3]
    cameras = {}
    if "ba_extrinsic" in arrays:
        cameras["bundle-adjusted"] = (arrays["ba_extrinsic"], arrays.get("ba_intrinsic", arrays["intrinsic"]))
    cameras["feed-forward"] = (arrays["extrinsic"], arrays["intrinsic"])
    has_head = "world_points" in arrays and "world_points_conf" in arrays
    per_frame = max(1, max_points // num)
    rng = np.random.default_rng(seed)
    parts = {"frame": [], "rgb": [], "depth_conf": [], "head_conf": [], "head": []}
    xyz = {name: [] for name in cameras}
    thumbnails = []
    step = max(1, -(-max(height, width) // 160))
    for i in range(num):
        image = np.asarray(images[i]).transpose(1, 2, 0)
        thumbnails.append(np.round(np.clip(image[::step, ::step], 0, 1) * 255).astype(np.uint8))
        d = np.asarray(depth[i]).reshape(height, width)
        valid = np.flatnonzero(np.isfinite(d) & (d > 0))
        if len(valid) > per_frame:
            valid = np.sort(rng.choice(valid, per_frame, replace=False))
        rows, cols = np.divmod(valid, width)
        parts["frame"].append(np.full(len(valid), i))
        parts["rgb"].append(np.round(np.clip(image[rows, cols], 0, 1) * 255).astype(np.uint8))
        conf = arrays.get("depth_conf")
        parts["depth_conf"].append(np.asarray(conf[i])[rows, cols] if conf is not None else np.ones(len(valid)))
        for name, (ext, intr) in cameras.items():
            pts = depth_to_world_points(d[None].astype(np.float64), ext[i : i + 1], intr[i : i + 1])[0]
            xyz[name].append(pts[rows, cols].astype(np.float32))
        if has_head:
            parts["head"].append(np.asarray(arrays["world_points"][i])[rows, cols].astype(np.float32))
            parts["head_conf"].append(np.asarray(arrays["world_points_conf"][i])[rows, cols])
    cat = {k: np.concatenate(v) for k, v in parts.items() if v}
    if not len(cat["frame"]):
        raise ViewError(f"{out_dir}: no frame has a finite, positive depth to show")
    conf = {"depth": cat["depth_conf"]}
    points = {name: {"depth": np.concatenate(v)} for name, v in xyz.items()}
    if has_head:
        conf["point head"] = cat["head_conf"]
        for name in points:  # the point head has no cameras of its own
            points[name]["point head"] = cat["head"]
    names = [str(n) for n in arrays.get("image_names", [f"frame {i}" for i in range(num)])]
    samples = Samples(cat["frame"], cat["rgb"], conf, points)
    return Reconstruction(names, thumbnails, (height, width), cameras, samples)


def visible_points(recon: Reconstruction, cameras: str, source: str, percentile: float, frames: tuple[int, int]):
    """``(xyz [M, 3], rgb [M, 3])`` of the points in frames ``frames[0]..frames[1]`` whose confidence is at least
    the ``percentile``-th percentile of those frames' confidences (the official demos' filter)."""
    s = recon.samples
    in_range = (s.frame >= frames[0]) & (s.frame <= frames[1])
    conf = s.conf[source]
    keep = in_range & np.isfinite(conf)
    if keep.any() and percentile > 0:
        keep &= conf >= np.percentile(conf[keep], percentile)
    return s.xyz[cameras][source][keep], s.rgb[keep]


def _camera_pose(extrinsic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """camera-from-world [3, 4] -> (wxyz, position) of the camera in the world, for viser (OpenCV axes, as ours)."""
    import viser.transforms as vtf

    rotation = extrinsic[:3, :3].T
    return vtf.SO3.from_matrix(rotation).wxyz, -rotation @ extrinsic[:3, 3]


def serve(recon: Reconstruction, host: str = "127.0.0.1", port: int = 8080, conf_percentile: float = 50.0):
    """Start the page (viser serves it from a background thread) and return the ``viser.ViserServer``."""
    import viser

    from vggt_jax.inference.exports._common import scene_scale

    server = viser.ViserServer(host=host, port=port, verbose=False)
    server.scene.set_up_direction("-y")  # camera 0's frame, OpenCV axes: y points down
    num, (height, width) = recon.num_frames, recon.hw
    first = next(iter(recon.cameras))
    scale = scene_scale(recon.samples.xyz[first]["depth"])
    colors = frame_colors(num)

    gui = server.gui
    gui.add_markdown(f"**{num} frames**, {len(recon.samples.frame):,} points sampled")
    cameras = gui.add_dropdown("cameras", tuple(recon.cameras), initial_value=first)
    source = gui.add_dropdown("points from", tuple(recon.samples.conf), initial_value="depth")
    percentile = gui.add_slider("confidence percentile", 0.0, 99.0, 1.0, float(conf_percentile))
    frames = gui.add_multi_slider("frames", 0, max(num - 1, 1), 1, (0, num - 1), disabled=num == 1)
    point_size = gui.add_slider("point size (% of the scene)", 0.05, 2.0, 0.05, 0.2)
    show_cameras = gui.add_checkbox("show cameras", True)

    def draw_points(_=None) -> None:
        lo, hi = (int(v) for v in frames.value)
        xyz, rgb = visible_points(recon, cameras.value, source.value, percentile.value, (lo, hi))
        server.scene.add_point_cloud(
            "/points",
            xyz,
            rgb,
            point_size=float(point_size.value) * scale / 100,
            point_shape="circle",
            precision="float32",
        )

    def draw_cameras(_=None) -> None:
        ext, intr = recon.cameras[cameras.value]
        lo, hi = (int(v) for v in frames.value)
        for i in range(num):
            wxyz, position = _camera_pose(ext[i])
            fov = 2 * np.arctan2(height / 2, intr[i, 1, 1])
            server.scene.add_camera_frustum(
                f"/cameras/{i:05d}",
                fov=float(fov),
                aspect=width / height,
                scale=0.08 * scale,
                thickness=3.0,
                thickness_units="screen",
                color=tuple(int(c) for c in colors[i]),
                image=recon.thumbnails[i],
                wxyz=wxyz,
                position=position,
                visible=bool(show_cameras.value) and lo <= i <= hi,
            )

    for handle in (cameras, source, percentile, frames, point_size):
        handle.on_update(draw_points)
    for handle in (cameras, frames, show_cameras):
        handle.on_update(draw_cameras)
    draw_points()
    draw_cameras()
    # Start behind and above camera 0, looking at the cloud's median.
    target = np.median(recon.samples.xyz[first]["depth"], axis=0)
    server.initial_camera.position = tuple(float(v) for v in (0.0, -0.3 * scale, -0.6 * scale))
    server.initial_camera.look_at = tuple(float(v) for v in target)
    server.initial_camera.up = (0.0, -1.0, 0.0)
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vggt_jax.view", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="an infer.py --out folder")
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to reach it from another machine")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--max_points", type=int, default=400_000, help="points sampled for the page")
    parser.add_argument("--conf_percentile", type=float, default=50.0, help="the slider's start")
    args = parser.parse_args(argv)
    try:
        recon = load_reconstruction(args.out_dir, args.max_points)
    except ViewError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    server = serve(recon, args.host, args.port, args.conf_percentile)
    print(f"viewer: http://{args.host}:{server.get_port()}  (Ctrl-C to stop)", flush=True)
    try:
        server.sleep_forever()
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
