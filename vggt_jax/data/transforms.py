"""Per-frame and per-sample transforms: pure numpy functions, each usable alone.

Random choices are separated from the operations: ``sample_*_params(rng, ...)`` draws the parameters, and the
operation is a deterministic function of its inputs and those parameters. The pipeline composes exactly these calls
(``pipeline.make_sample``), so a test can replay any step by hand.

Geometric ops keep the intrinsics exact under this project's convention (pixel centres at integer coordinates, pixel
(u, v) covering [u - 0.5, u + 0.5]): a crop starting at (left, top) moves the principal point by (-left, -top); a
resize by (sx, sy) = (w_out / w_in, h_out / h_in) maps x -> (x + 0.5) * sx - 0.5, so fx *= sx and
cx -> (cx + 0.5) * sx - 0.5 (likewise for y). Images are uint8 [H, W, 3] through the geometric ops (Pillow resampling,
as the official pipeline) and float32 [0, 1] afterwards; depth is float32 [H, W] with 0 = invalid.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from vggt_jax.data import augment
from vggt_jax.geometry import closed_form_inverse_se3, pixel_grid, pixel_rays, transform_points

_GRAY = np.array([0.2989, 0.587, 0.114], np.float32)  # torchvision's rgb_to_grayscale weights


# --------------------------------------------------------------------------------------------------- geometric ops
def crop(image: np.ndarray, depth: np.ndarray, intrinsic: np.ndarray, top: int, left: int, height: int, width: int):
    """Crop the window ``[top, top + height) x [left, left + width)``; parts outside the image are zero-padded (depth
    0, i.e. invalid). Returns ``(image [height, width, 3], depth [height, width], intrinsic)``."""
    h, w = depth.shape
    out_img = np.zeros((height, width) + image.shape[2:], image.dtype)
    out_depth = np.zeros((height, width), depth.dtype)
    y0, y1, x0, x1 = max(top, 0), min(top + height, h), max(left, 0), min(left + width, w)
    if y1 > y0 and x1 > x0:
        out_img[y0 - top : y1 - top, x0 - left : x1 - left] = image[y0:y1, x0:x1]
        out_depth[y0 - top : y1 - top, x0 - left : x1 - left] = depth[y0:y1, x0:x1]
    k = np.array(intrinsic, np.float64)
    k[0, 2] -= left
    k[1, 2] -= top
    return out_img, out_depth, k


def principal_point_window(center: float, size: int, target: int, strict: bool) -> tuple[int, int]:
    """``(start, length)`` of a 1D window of ``target`` pixels whose centre is as close as possible to ``center``.

    Non-strict: the window also stays inside ``[0, size)``, so it may be shorter than ``target`` (the largest window
    centred on ``center`` that fits). Strict: always ``target`` long, possibly reaching outside (padded by ``crop``).
    """
    if not strict:
        fit = math.floor(min(2 * center + 1, 2 * (size - center) - 1) + 1e-9)
        target = max(1, min(target, fit))
    start = round(center - (target - 1) / 2)
    if not strict:
        start = min(max(start, 0), size - target)
    return start, target


def crop_around_principal_point(image, depth, intrinsic, target_hw, strict: bool):
    """Crop a ``target_hw`` window centred on the principal point (see ``principal_point_window``); afterwards the
    principal point is within 0.5 px of the crop's centre ``((w - 1) / 2, (h - 1) / 2)``."""
    top, height = principal_point_window(intrinsic[1, 2], depth.shape[0], int(target_hw[0]), strict)
    left, width = principal_point_window(intrinsic[0, 2], depth.shape[1], int(target_hw[1]), strict)
    return crop(image, depth, intrinsic, top, left, height, width)


def resize(image: np.ndarray, depth: np.ndarray, intrinsic: np.ndarray, out_hw):
    """Resize to ``out_hw`` (H, W): image with Lanczos when shrinking and bicubic when enlarging (Pillow, as the
    official pipeline), depth with centre-aligned nearest neighbour (interpolating depth would invent surfaces at
    depth edges), intrinsics exactly per axis."""
    h, w = depth.shape
    out_h, out_w = int(out_hw[0]), int(out_hw[1])
    sy, sx = out_h / h, out_w / w
    resample = Image.Resampling.LANCZOS if max(sx, sy) < 1 else Image.Resampling.BICUBIC
    out_img = np.asarray(Image.fromarray(image).resize((out_w, out_h), resample=resample))
    # Output pixel centre y' sits at input y = (y' + 0.5) / sy - 0.5, whose nearest pixel is floor((y' + 0.5) / sy).
    rows = np.minimum(((np.arange(out_h) + 0.5) / sy).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(out_w) + 0.5) / sx).astype(np.int64), w - 1)
    out_depth = depth[rows[:, None], cols[None, :]]
    k = np.array(intrinsic, np.float64)
    k[0] *= sx
    k[1] *= sy
    k[0, 2] += 0.5 * sx - 0.5
    k[1, 2] += 0.5 * sy - 0.5
    k[2] = (0.0, 0.0, 1.0)
    return out_img, out_depth, k


def sample_frame_params(rng: np.random.Generator, scales=(0.8, 1.2), rescale_margin: float = 0.3) -> dict:
    """Random crop/zoom parameters of one frame (the official ``process_one_image`` augmentation).

    ``zoom_hw``: fraction of the image kept around the principal point before resizing (``U(scales)`` per axis,
    capped at 1: upscaling would only pad). ``margin``: extra resize margin as a fraction of the target's long side,
    ``triangular(0, 0, rescale_margin)``; the final centre crop then cuts it away, so it acts as a random zoom-in.
    """
    zoom = np.minimum(rng.uniform(scales[0], scales[1], 2), 1.0) if scales else np.ones(2)
    margin = rng.triangular(0.0, 0.0, rescale_margin) if rescale_margin > 0 else 0.0
    return dict(zoom_hw=(float(zoom[0]), float(zoom[1])), margin=float(margin))


def transform_frame(image, depth, intrinsic, target_hw, params: dict, safe_bound: float = 4.0):
    """Crop around the principal point (zoom), resize to cover ``target_hw`` plus a margin, centre-crop to
    ``target_hw``. Returns ``(image [h, w, 3] uint8, depth [h, w] float32, intrinsic [3, 3])``."""
    target = np.asarray(target_hw, np.float64)
    in_hw = np.array(depth.shape, np.float64)
    zoom_hw = np.maximum(np.floor(in_hw * np.asarray(params["zoom_hw"])), 1)
    image, depth, intrinsic = crop_around_principal_point(image, depth, intrinsic, zoom_hw.astype(int), strict=False)
    cur = np.array(depth.shape, np.float64)
    scale = np.max((target + safe_bound + params["margin"] * target.max()) / cur)
    image, depth, intrinsic = resize(image, depth, intrinsic, np.floor(cur * scale).astype(int))
    shift = params.get("pp_shift", (0.0, 0.0))
    if shift[0] == 0 and shift[1] == 0:
        return crop_around_principal_point(image, depth, intrinsic, target_hw, strict=True)
    return crop(image, depth, intrinsic, *_shifted_window(depth.shape, intrinsic, target_hw, shift))


def _shifted_window(size_hw, intrinsic, target_hw, shift) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of a ``target_hw`` crop whose principal point sits ``shift = (dx, dy)`` (a
    fraction of the target's width and height) from its centre, moved back inside the image where the shift would
    reach past it (never further out than the centred window)."""
    starts = []
    for center, size, target, frac in zip(intrinsic[[1, 0], 2], size_hw, target_hw, shift[::-1], strict=True):
        centred, _ = principal_point_window(center, size, int(target), strict=True)
        start = round(center - (target - 1) / 2 - frac * target)
        lo, hi = min(0, centred), max(size - int(target), centred)
        starts.append(int(min(max(start, lo), hi)))
    return starts[0], starts[1], int(target_hw[0]), int(target_hw[1])


# ------------------------------------------------------------------------------------------------------- colour
def sample_color_params(rng: np.random.Generator, num_frames: int, cfg) -> list[dict]:
    """Colour augmentation parameters per frame (torchvision ``ColorJitter`` inside ``RandomApply(p)``, then
    ``RandomGrayscale``), shared by all frames with probability ``1 - cojitter_ratio`` when ``cojitter`` is set,
    as the official ComposedDataset does. ``cfg``: brightness, contrast, saturation, hue, p, gray_p, cojitter,
    cojitter_ratio."""
    shared = cfg["cojitter"] and rng.random() > cfg["cojitter_ratio"]

    def draw() -> dict:
        b, c, s, h = cfg["brightness"], cfg["contrast"], cfg["saturation"], cfg["hue"]
        return dict(
            apply=bool(rng.random() < cfg["p"]),
            order=rng.permutation(4).tolist(),
            brightness=float(rng.uniform(max(0.0, 1 - b), 1 + b)),
            contrast=float(rng.uniform(max(0.0, 1 - c), 1 + c)),
            saturation=float(rng.uniform(max(0.0, 1 - s), 1 + s)),
            hue=float(rng.uniform(-h, h)),
            gray=bool(rng.random() < cfg["gray_p"]),
        )

    if shared:
        params = draw()
        return [params] * num_frames
    return [draw() for _ in range(num_frames)]


def color_jitter(image: np.ndarray, params: dict) -> np.ndarray:
    """Apply ``params`` (from ``sample_color_params``) to ``image [H, W, 3]`` float32 in [0, 1]."""
    img = image.astype(np.float32)  # a copy: the ops below work in place
    if params["apply"]:
        for op in params["order"]:
            if op == 0:
                img *= np.float32(params["brightness"])
            elif op == 1:
                factor = np.float32(params["contrast"])
                mean = (img @ _GRAY).mean()
                img *= factor
                img += (1 - factor) * mean
            elif op == 2:
                factor = np.float32(params["saturation"])
                gray = (img @ _GRAY)[..., None]
                img *= factor
                img += (1 - factor) * gray
            elif params["hue"] != 0:
                img = _shift_hue(img, params["hue"])
            np.clip(img, 0, 1, out=img)
    if params["gray"]:
        img = np.repeat((img @ _GRAY)[..., None], 3, axis=-1)
    return img


def _shift_hue(rgb: np.ndarray, shift: float) -> np.ndarray:
    """Rotate the hue of ``rgb [..., 3]`` by ``shift`` turns (RGB -> HSV -> RGB, per channel plane: reductions over a
    trailing axis of 3 and ``np.choose`` are several times slower)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    value = np.maximum(np.maximum(r, g), b)
    chroma = value - np.minimum(np.minimum(r, g), b)
    safe = np.where(chroma > 0, chroma, 1)
    # Hue sector by which channel is the maximum (ties resolved r, g, b, like torchvision and colorsys).
    hue = np.where(value == r, (g - b) / safe, np.where(value == g, 2 + (b - r) / safe, 4 + (r - g) / safe))
    hue = np.where(chroma > 0, hue, 0) + np.float32(6 * shift)
    sat_value = np.where(value > 0, chroma, 0)  # = saturation * value
    out = np.empty_like(rgb)
    for channel, n in enumerate((5, 3, 1)):
        k = np.mod(n + hue, 6)
        out[..., channel] = value - sat_value * np.clip(np.minimum(k, 4 - k), 0, 1)
    return out


# -------------------------------------------------------------------------------------------- ground truth & scale
def world_points_from_depth(depths: np.ndarray, extrinsics: np.ndarray, intrinsics: np.ndarray, distortions=None):
    """``depths [S, H, W]``, ``extrinsics [S, 3, 4]``, ``intrinsics [S, 3, 3]`` -> ``world_points [S, H, W, 3]``
    (0 where invalid) and ``point_masks [S, H, W]`` bool (depth > 1e-8, the official threshold). ``distortions
    [S, 2]``: frames seen through ``augment.radial_distort`` (their rays are ``augment.distorted_pixel_rays``).

    Points come out in the dtype of ``depths`` (the pipeline uses float32, as the official trainer: ~1e-7 relative);
    rays and camera poses are applied from float64.
    """
    masks = depths > 1e-8
    points = np.empty(depths.shape + (3,), depths.dtype)
    for s, (depth, ext, intr) in enumerate(zip(depths, extrinsics, intrinsics, strict=True)):
        if distortions is None:
            rays = pixel_rays(*pixel_grid(*depth.shape), intr).astype(depths.dtype)
        else:
            rays = augment.distorted_pixel_rays(*pixel_grid(*depth.shape), intr, distortions[s]).astype(depths.dtype)
        world_from_cam = closed_form_inverse_se3(np.asarray(ext, np.float64))[:3].astype(depths.dtype)
        points[s] = transform_points(rays * depth[..., None], world_from_cam[:, :3], world_from_cam[:, 3])
    points[~masks] = 0
    return points, masks


def normalize_to_first_camera(extrinsics, world_points, depths, point_masks, scale: float | None = None):
    """The official trainer's GT normalisation (``normalize_camera_extrinsics_and_points_batch``) of one sample.

    Extrinsics become relative to camera 0 (``E_i @ inv(E_0)``), world points move into camera 0's frame
    (``R_0 p + t_0``), then translations, points and depths are divided by the mean distance of the valid points
    from camera 0, ``sum(|p| * mask) / (sum(mask) + 1e-3)`` clamped to [1e-6, 1e6].

    Args: ``extrinsics [S, 3, 4]``, ``world_points [S, H, W, 3]``, ``depths [S, H, W]``, ``point_masks [S, H, W]``;
      ``scale``: use this divisor instead of the mean point distance.
    Returns: ``(extrinsics [S, 3, 4] float64, world_points, depths, scale)``: points and depths keep their dtype;
    ``scale`` is the divisor (a Python float).
    """
    ext = np.asarray(extrinsics, np.float64)
    rel = ext @ closed_form_inverse_se3(ext[0])  # E_i @ inv(E_0), the top three rows
    dtype = world_points.dtype
    points = transform_points(world_points, ext[0, :, :3], ext[0, :, 3])
    if scale is None:
        dist = np.sqrt(np.einsum("...i,...i->...", points, points))
        # Upstream adds 1e-3 to an integer count, which torch promotes to float32; doing the same keeps the scale
        # equal to upstream's to float64 round-off.
        count = np.float32(point_masks.sum()) + np.float32(1e-3)
        scale = float(np.clip(dist[point_masks].sum(dtype=np.float64) / np.float64(count), 1e-6, 1e6))
    rel[:, :, 3] /= scale
    return rel, points / dtype.type(scale), depths / depths.dtype.type(scale), scale
