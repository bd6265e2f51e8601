"""Sensor and lens augmentations (the paper's "exposure changes, motion blur, lens differences"): pure numpy ops.

As in ``transforms``, ``sample_*_params(rng, ...)`` draws the parameters and each op is a deterministic function of
its inputs and those parameters; ``pipeline.make_sample`` composes exactly these calls, in this order:

    transform_frame (zoom = focal, principal-point shift)  ->  radial_distort  ->  exposure  ->  motion_blur
    ->  colour jitter  ->  ground truth from depth with the distortion

* **Exposure** (``exposure``): gain and gamma in linear light, ``srgb(clip(gain * linear(x), 0, 1) ** gamma)``: a
  brighter exposure saturates the highlights as a sensor does, a darker one lifts nothing out of the clipped range.
  Applied as a 256-entry table to the uint8 frame (exact, ~0.3 ms a frame).
* **Motion blur** (``motion_blur``): the average of the frame along a line segment of ``length`` px at ``angle``
  (a camera moving during the exposure); depth and masks are unchanged, as in a real capture.
* **Radial distortion** (``radial_distort``): the frame as a lens with radial distortion would have seen it. The
  coefficients are those of the *undistortion* map, so the ground truth is exact without iterating: pixel ``p`` of
  the distorted frame, at normalised coordinates ``x = K^-1 p``, sees the pinhole ray ``x * (1 + k1 r^2 + k2 r^4)``
  (``r = |x|``) of the same intrinsics ``K``. The image is resampled bilinearly, the depth by nearest neighbour
  (camera z does not change along a ray); pixels whose ray leaves the source frame get depth 0. The sample records
  ``distortion [S, 2] = (k1, k2)``; ``distorted_pixel_rays`` and ``distort_pixels`` are its two directions and are
  what the world points and the tracks use.
* **Lens differences**: focal length is the zoom of ``transforms.sample_frame_params`` (``augs.scales``, the
  official scale augmentation); ``principal_point_shift`` moves the final crop so the principal point leaves the
  centre (off by default: the camera head predicts field of view only, and upstream always centres it).
"""

from __future__ import annotations

import numpy as np

from vggt_jax.geometry import pixel_rays


# ------------------------------------------------------------------------------------------------------ exposure
def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(np.maximum(x, 0.0031308), 1 / 2.4) - 0.055)


def _per_frame_or_scene(num_frames: int, per_frame: bool, draw) -> list[dict]:
    if per_frame:
        return [draw() for _ in range(num_frames)]
    return [draw()] * num_frames


def sample_exposure_params(rng: np.random.Generator, num_frames: int, augs) -> list[dict]:
    """Per frame (``augs.exposure_per_frame``, auto-exposure) or one for the scene: ``apply`` with probability
    ``augs.exposure_p``, ``gain = 2 ** U(augs.exposure_stops)``, ``gamma = exp(U(log augs.exposure_gamma))``."""
    lo, hi = augs.exposure_stops
    glo, ghi = np.log(augs.exposure_gamma)

    def draw() -> dict:
        return dict(
            apply=bool(rng.random() < augs.exposure_p),
            gain=float(2.0 ** rng.uniform(lo, hi)),
            gamma=float(np.exp(rng.uniform(glo, ghi))),
        )

    return _per_frame_or_scene(num_frames, augs.exposure_per_frame, draw)


def exposure_table(params: dict) -> np.ndarray:
    """``[256]`` float32: the exposed value in [0, 1] of every uint8 input."""
    x = np.arange(256, dtype=np.float64) / 255.0
    if params["apply"]:
        x = linear_to_srgb(np.clip(params["gain"] * srgb_to_linear(x), 0.0, 1.0) ** params["gamma"])
    return x.astype(np.float32)


def exposure(image: np.ndarray, params: dict) -> np.ndarray:
    """``image [H, W, 3]`` uint8 -> float32 in [0, 1] with the exposure of ``params`` (``image / 255`` when not
    applied)."""
    if image.dtype != np.uint8:
        raise TypeError(f"exposure takes the uint8 frame, got {image.dtype}")
    return exposure_table(params)[image]


# --------------------------------------------------------------------------------------------------- motion blur
def sample_blur_params(rng: np.random.Generator, num_frames: int, augs) -> list[dict]:
    """Per frame: ``apply`` with probability ``augs.blur_p``, ``length`` px ~ U(augs.blur_length), ``angle`` ~
    U[0, pi) (a segment has no direction)."""
    lo, hi = augs.blur_length
    return [
        dict(
            apply=bool(rng.random() < augs.blur_p),
            length=float(rng.uniform(lo, hi)),
            angle=float(rng.uniform(0, np.pi)),
        )
        for _ in range(num_frames)
    ]


def blur_offsets(length: float, angle: float) -> np.ndarray:
    """``[n, 2]`` int (dx, dy): the pixels of a centred segment of ``length`` px at ``angle``, one sample per px."""
    n = max(1, int(round(length)))
    t = np.linspace(-(length - 1) / 2, (length - 1) / 2, n) if n > 1 else np.zeros(1)
    return np.round(np.stack([t * np.cos(angle), t * np.sin(angle)], -1)).astype(np.int64)


def motion_blur(image: np.ndarray, params: dict) -> np.ndarray:
    """``image [H, W, C]`` float -> the mean of its copies shifted along the segment (edges repeated)."""
    if not params["apply"] or params["length"] < 1.5:
        return image
    offsets = blur_offsets(params["length"], params["angle"])
    pad = int(np.abs(offsets).max())
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    h, w = image.shape[:2]
    out = np.zeros_like(image)
    for dx, dy in offsets:
        out += padded[pad + dy : pad + dy + h, pad + dx : pad + dx + w]
    out *= np.float32(1.0 / len(offsets))
    return out


# ------------------------------------------------------------------------------------------------------ lens
NO_LENS = dict(distortion=(0.0, 0.0), pp_shift=(0.0, 0.0))


def sample_lens_params(rng: np.random.Generator, num_frames: int, augs) -> list[dict]:
    """Per scene (one lens; ``augs.distortion_per_frame`` for a different one per frame): ``distortion (k1, k2)``,
    uniform in ``augs.k1`` / ``augs.k2`` with probability ``augs.distortion_p`` else zero; and per frame the
    principal-point shift ``pp_shift (dx, dy)``, a fraction of the frame's size uniform in +-``augs.pp_shift``."""

    def draw() -> dict:
        if rng.random() < augs.distortion_p:
            return dict(distortion=(float(rng.uniform(*augs.k1)), float(rng.uniform(*augs.k2))))
        return dict(distortion=(0.0, 0.0))

    lenses = _per_frame_or_scene(num_frames, augs.distortion_per_frame, draw)
    shift = augs.pp_shift
    return [
        dict(lens, pp_shift=tuple(rng.uniform(-shift, shift, 2).tolist()) if shift > 0 else (0.0, 0.0))
        for lens in lenses
    ]


def _undistortion_factor(x: np.ndarray, y: np.ndarray, k1: float, k2: float) -> np.ndarray:
    r2 = x * x + y * y
    return 1.0 + r2 * (k1 + k2 * r2)


def distorted_pixel_rays(u: np.ndarray, v: np.ndarray, intrinsic: np.ndarray, distortion) -> np.ndarray:
    """``pixel_rays`` of a distorted frame: pixel ``(u, v)`` -> its camera ray ``[..., 3]`` with z = 1."""
    rays = pixel_rays(u, v, intrinsic)
    k1, k2 = (float(c) for c in distortion)
    if k1 == 0 and k2 == 0:
        return rays
    f = _undistortion_factor(rays[..., 0], rays[..., 1], k1, k2)
    return np.stack([rays[..., 0] * f, rays[..., 1] * f, rays[..., 2]], -1)


def distort_pixels(
    xy: np.ndarray, intrinsic: np.ndarray, distortion, max_radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole pixels ``xy [..., 2]`` of ``intrinsic`` -> where the distorted frame shows them, and ``ok [...]``.

    Inverts ``r_u = r_d (1 + k1 r_d^2 + k2 r_d^4)`` by Newton's method; ``ok`` is False where no solution with
    ``r_d <= max_radius`` (the frame's normalised corner radius) exists on the map's monotonic part.
    """
    k1, k2 = (float(c) for c in distortion)
    xy = np.asarray(xy, np.float64)
    ok = np.all(np.isfinite(xy), axis=-1)
    if k1 == 0 and k2 == 0:
        return xy, ok
    (fx, skew, cx), (_, fy, cy) = intrinsic[0], intrinsic[1]
    yn = (xy[..., 1] - cy) / fy
    xn = (xy[..., 0] - cx - skew * yn) / fx
    r_u = np.sqrt(xn * xn + yn * yn)
    r = np.where(np.isfinite(r_u), r_u, 0.0)
    with np.errstate(over="ignore", invalid="ignore"):  # far outside the frame Newton may diverge: ok is False
        for _ in range(20):
            r2 = r * r
            slope = 1 + 3 * k1 * r2 + 5 * k2 * r2 * r2
            r = r - (r * (1 + k1 * r2 + k2 * r2 * r2) - r_u) / np.where(slope > 1e-6, slope, 1e-6)
        r2 = r * r
        residual = np.abs(r * (1 + k1 * r2 + k2 * r2 * r2) - r_u)
        monotonic = 1 + 3 * k1 * r2 + 5 * k2 * r2 * r2 > 0
        ok &= (residual < 1e-9 * (1 + r_u)) & monotonic & (r <= max_radius) & (r >= 0)
        scale = np.where(ok & (r_u > 0), r / np.where(r_u > 0, r_u, 1), 1.0)
    xd, yd = xn * scale, yn * scale
    return np.stack([fx * xd + skew * yd + cx, fy * yd + cy], -1), ok


def corner_radius(intrinsic: np.ndarray, height: int, width: int) -> float:
    """The largest normalised radius of a pixel of a ``height x width`` frame (half a pixel beyond the corners)."""
    u = np.array([-0.5, width - 0.5, -0.5, width - 0.5])
    v = np.array([-0.5, -0.5, height - 0.5, height - 0.5])
    rays = pixel_rays(u, v, intrinsic)
    return float(np.sqrt(rays[:, 0] ** 2 + rays[:, 1] ** 2).max())


def radial_distort(image: np.ndarray, depth: np.ndarray, intrinsic: np.ndarray, distortion):
    """The frame as the lens ``distortion = (k1, k2)`` (module docstring) sees it, with the same intrinsics.

    Args: ``image [H, W, 3]`` uint8, ``depth [H, W]`` float32 (0 = invalid), ``intrinsic [3, 3]``.
    Returns: ``(image uint8, depth float32)``; pixels that see outside the source frame are black with depth 0.
    """
    k1, k2 = (float(c) for c in distortion)
    if k1 == 0 and k2 == 0:
        return image, depth
    h, w = depth.shape
    # The source position of every pixel, in float32 (1e-4 px at 4k): x_u = x_d * (1 + k1 r^2 + k2 r^4).
    (fx, skew, cx), (_, fy, cy) = np.asarray(intrinsic, np.float64)[:2]
    yn = ((np.arange(h, dtype=np.float32) - np.float32(cy)) / np.float32(fy))[:, None]
    xn = (np.arange(w, dtype=np.float32)[None, :] - np.float32(cx) - np.float32(skew) * yn) / np.float32(fx)
    r2 = xn * xn + yn * yn
    factor = 1 + r2 * (np.float32(k1) + np.float32(k2) * r2)
    src_y = np.float32(fy) * yn * factor + np.float32(cy)
    src_x = np.float32(fx) * xn * factor + np.float32(skew) * yn * factor + np.float32(cx)
    inside = (src_x >= -0.5) & (src_x <= w - 0.5) & (src_y >= -0.5) & (src_y <= h - 0.5)
    # Depth: the nearest source pixel.
    ni = np.clip(np.floor(src_y + 0.5).astype(np.int64), 0, h - 1)
    nj = np.clip(np.floor(src_x + 0.5).astype(np.int64), 0, w - 1)
    out_depth = np.where(inside, np.take(depth.ravel(), ni * w + nj), 0).astype(np.float32)
    # Image: bilinear between the four source pixels around (edges repeated for the half pixel at the border).
    x0 = np.clip(np.floor(src_x), 0, w - 1).astype(np.int64)
    y0 = np.clip(np.floor(src_y), 0, h - 1).astype(np.int64)
    ax, ay = np.clip(src_x - x0, 0, 1), np.clip(src_y - y0, 0, 1)
    i00 = y0 * w + x0
    i01 = i00 + (x0 < w - 1)
    i10, i11 = i00 + (y0 < h - 1) * w, i01 + (y0 < h - 1) * w
    out = np.empty_like(image)
    # Channel planes and np.take: several times faster than fancy indexing over a trailing axis of 3.
    for channel in range(image.shape[2]):
        plane = image[..., channel].astype(np.float32).ravel()
        a, b, c, d = (np.take(plane, i) for i in (i00, i01, i10, i11))
        top = a + (b - a) * ax
        value = top + (c + (d - c) * ax - top) * ay
        out[..., channel] = np.clip(value * inside + 0.5, 0, 255).astype(np.uint8)
    return out, out_depth
