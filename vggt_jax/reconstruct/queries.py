"""Where to start tracks: which frames to query (frame 0 and K-1 more) and which pixels of each.

* ``select_query_frames``: frame 0, then greedily the frame farthest from those chosen (``rule="pose"``: farthest
  point sampling on the predicted poses, by the larger of the rotation angle and the angle the camera centre
  moved, seen from the scene centre), or evenly spaced (``rule="uniform"``). Far-apart query frames see parts of
  the scene frame 0 does not.
* ``select_query_points``: a grid of cells over the frame, in each the pixel with the strongest Harris corner
  response (textured pixels track well; flat ones do not), kept where the response is not negligible and the
  predicted depth confidence is at least its median over the frame. No model weights are needed.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from vggt_jax.geometry import camera_centers

FRAME_RULES = ("pose", "uniform")


def select_query_frames(extrinsics: np.ndarray, count: int, rule: str = "pose", points: np.ndarray | None = None):
    """``count`` distinct frame indices, frame 0 first, from ``extrinsics [S, 3, 4]`` (camera-from-world).

    ``points``: ``[N, 3]`` scene points (e.g. a subsample of the predicted cloud) whose median is the scene centre
    for the ``pose`` rule's translation angle; default: the point 1 unit in front of camera 0.
    """
    num = len(extrinsics)
    count = min(max(int(count), 1), num)
    if rule == "uniform":
        return [int(i) for i in np.unique(np.round(np.linspace(0, num - 1, count)).astype(int))][:count]
    if rule != "pose":
        raise ValueError(f"query frame rule must be one of {FRAME_RULES}, got {rule!r}")
    rotations = extrinsics[:, :, :3]
    cos = (np.einsum("aij,bij->ab", rotations, rotations) - 1) / 2  # trace(R_a R_b^T) = sum of elementwise products
    rot_angle = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    centres = camera_centers(extrinsics)
    centre = np.median(points, axis=0) if points is not None and len(points) else centres[0] + rotations[0, 2]
    rays = centres - centre
    rays /= np.maximum(np.linalg.norm(rays, axis=-1, keepdims=True), 1e-12)
    move_angle = np.degrees(np.arccos(np.clip(rays @ rays.T, -1, 1)))
    distance = np.maximum(rot_angle, move_angle)
    chosen = [0]
    nearest = distance[0].copy()
    while len(chosen) < count:
        nearest[chosen] = -1
        nxt = int(np.argmax(nearest))
        chosen.append(nxt)
        nearest = np.minimum(nearest, distance[nxt])
    return chosen


def harris_response(gray: np.ndarray, sigma: float = 1.5, k: float = 0.04) -> np.ndarray:
    """Harris corner response ``[H, W]`` of a grey image ``[H, W]`` (Sobel gradients, Gaussian window)."""
    gx, gy = ndimage.sobel(gray, axis=1), ndimage.sobel(gray, axis=0)
    xx = ndimage.gaussian_filter(gx * gx, sigma)
    yy = ndimage.gaussian_filter(gy * gy, sigma)
    xy = ndimage.gaussian_filter(gx * gy, sigma)
    return xx * yy - xy * xy - k * (xx + yy) ** 2


def select_query_points(
    image: np.ndarray,
    max_points: int,
    *,
    conf: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    margin: int = 4,
    min_response: float = 1e-3,
) -> np.ndarray:
    """Up to ``max_points`` query pixels ``[N, 2]`` (x, y) of one frame, strongest corner response first.

    Args:
      image: ``[3, H, W]`` or ``[H, W, 3]`` in [0, 1].
      max_points: the cell grid has about this many cells (square cells over the frame, or its ``mask``'s box).
      conf: ``[H, W]`` predicted confidence; pixels below its median over the frame are not used.
      mask: ``[H, W]`` bool, where queries may go (e.g. ``ImageMeta.content_mask()``: not on padding).
      margin: pixels kept free at the border of the mask's box.
      min_response: cells whose best response is below this fraction of the frame's strongest give no query.
    """
    image = np.asarray(image, np.float64)
    if image.ndim == 3 and image.shape[0] == 3:
        image = image.transpose(1, 2, 0)
    height, width = image.shape[:2]
    allowed = np.ones((height, width), bool) if mask is None else np.asarray(mask, bool).copy()
    if conf is not None:
        allowed &= conf >= np.median(conf[allowed]) if allowed.any() else False
    ys, xs = np.nonzero(allowed)
    if len(ys) == 0 or max_points <= 0:
        return np.zeros((0, 2))
    y0, y1, x0, x1 = ys.min() + margin, ys.max() - margin + 1, xs.min() + margin, xs.max() - margin + 1
    interior = np.zeros_like(allowed)
    interior[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = True
    allowed &= interior
    response = harris_response(image @ np.array([0.299, 0.587, 0.114]))
    response = np.where(allowed, response, -np.inf)
    best = response.max()
    if not np.isfinite(best) or best <= 0:
        return np.zeros((0, 2))
    cell = max(int(np.sqrt(max(y1 - y0, 1) * max(x1 - x0, 1) / max_points)), 1)
    rows, cols = -(-height // cell), -(-width // cell)
    padded = np.full((rows * cell, cols * cell), -np.inf)
    padded[:height, :width] = response
    blocks = padded.reshape(rows, cell, cols, cell).transpose(0, 2, 1, 3).reshape(rows, cols, cell * cell)
    arg = blocks.argmax(-1)
    value = np.take_along_axis(blocks, arg[..., None], -1)[..., 0]
    r, c = np.nonzero(value >= min_response * best)
    y = r * cell + arg[r, c] // cell
    x = c * cell + arg[r, c] % cell
    order = np.argsort(-value[r, c], kind="stable")[:max_points]
    return np.stack([x[order], y[order]], axis=-1).astype(np.float64)
