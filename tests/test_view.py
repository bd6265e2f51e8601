"""The 3D viewer (``python -m vggt_jax.view``): what it loads and filters, and the page in a real browser.

The browser test needs Chromium: Debian's ``chromium`` package (``apt-get install chromium``), found on PATH as
``chromium``, ``chromium-browser`` or ``google-chrome``; where none is installed it is skipped (and says so)."""

import shutil
import socket
import subprocess

import numpy as np
import pytest
from PIL import Image

from vggt_jax import view
from vggt_jax.evaluate.ground_truth import synthetic
from vggt_jax.inference.exports.predictions import write_predictions

POINT_RGB = (0, 200, 200)  # cyan: hue 0.5, between the frustum hues of frame_colors(3) (red, green, blue)
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _write_output(directory, frames=3, height=42, width=56, conf=None):
    """An infer.py-like folder from a synthetic scene's exact cameras and depth, every pixel one colour."""
    gt = synthetic(3, frames, height, width, "turn")
    images = np.empty((frames, 3, height, width), np.float32)
    images[:] = (np.array(POINT_RGB, np.float32) / 255)[None, :, None, None]
    arrays = dict(
        images=images,
        depth=gt.depth.astype(np.float32),
        depth_conf=np.ones(gt.depth.shape, np.float32) if conf is None else conf,
        extrinsic=gt.extrinsics.astype(np.float32),
        intrinsic=gt.intrinsics.astype(np.float32),
        image_names=np.array(gt.names),
    )
    write_predictions(directory, arrays)
    return arrays


def test_load_and_filter(tmp_path):
    frames, height, width = 3, 14, 28
    conf = np.broadcast_to(np.arange(height * width, dtype=np.float32).reshape(height, width), (frames, height, width))
    _write_output(tmp_path, frames, height, width, conf=np.ascontiguousarray(conf))
    recon = view.load_reconstruction(tmp_path, max_points=3 * 100)
    assert recon.num_frames == 3 and list(recon.cameras) == ["feed-forward"]
    assert np.bincount(recon.samples.frame).tolist() == [100, 100, 100]
    xyz, rgb = view.visible_points(recon, "feed-forward", "depth", 0.0, (0, 2))
    assert len(xyz) == 300 and (rgb == POINT_RGB).all()
    xyz, _ = view.visible_points(recon, "feed-forward", "depth", 50.0, (1, 1))
    assert 45 <= len(xyz) <= 55  # the upper half of frame 1's confidences
    # The points are the depth unprojected with each frame's camera: back in camera 0, frame 0's are in front of it.
    first = recon.samples.frame == 0
    ext = recon.cameras["feed-forward"][0][0].astype(np.float64)
    in_cam0 = recon.samples.xyz["feed-forward"]["depth"][first] @ ext[:, :3].T + ext[:, 3]
    assert in_cam0[:, 2].min() > 0.1


def test_not_an_output_folder(tmp_path):
    with pytest.raises(view.ViewError, match="no predictions.npz.*--exports must include npz"):
        view.load_reconstruction(tmp_path)
    assert view.main([str(tmp_path)]) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _hue_counts(shot: np.ndarray, hues, tol: float = 0.12) -> list[int]:
    """Coloured pixels nearest to each of ``hues`` (within ``tol``), outside viser's own colours: its axes gizmo
    (bottom left), the control panel and the notification (top). The renderer's lighting shifts and washes out
    the frustums' colours (pure green renders at hue 0.25-0.28, sometimes pastel), so hues, not exact values."""
    rgb = shot[:, :, :3].astype(float) / 255
    rgb[-110:, :110] = rgb[:330, 560:] = rgb[:160, :320] = 1.0
    high, low = rgb.max(-1), rgb.min(-1)
    chroma = high - low
    safe = np.where(chroma > 0, chroma, 1)
    r, g, b = np.moveaxis(rgb, -1, 0)
    hue = np.where(high == r, (g - b) / safe % 6, np.where(high == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6
    coloured = (chroma > 0.15) & (high > 0.3)
    dist = np.stack([np.abs((hue - h + 0.5) % 1 - 0.5) for h in hues])
    nearest = np.argmin(dist, axis=0)
    return [int((coloured & (nearest == i) & (dist[i] <= tol)).sum()) for i in range(len(hues))]


def test_page_in_headless_chromium(tmp_path):
    browser = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if browser is None:
        pytest.skip("no Chromium on PATH (apt-get install chromium)")
    _write_output(tmp_path / "recon")
    server = view.serve(view.load_reconstruction(tmp_path / "recon"), port=_free_port())
    try:
        shot = tmp_path / "shot.png"
        cmd = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--use-angle=swiftshader",
            "--enable-unsafe-swiftshader",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=900,700",
            "--virtual-time-budget=8000",
            f"--screenshot={shot}",
            f"http://127.0.0.1:{server.get_port()}",
        ]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        pixels = np.asarray(Image.open(shot).convert("RGB"))
    finally:
        server.stop()
    points, *frustums = _hue_counts(pixels, [0.5, 0.0, 1 / 3, 2 / 3])
    assert points > 2000, f"only {points} point-coloured pixels: the cloud is not drawn"
    assert all(n > 100 for n in frustums), f"pixels per frustum colour {frustums}: expected 3 frustums"
