"""Images in, model input out: upstream's ``vggt/utils/load_fn.py``, pixel for pixel, plus the bookkeeping needed
to map predictions back onto the original images.

``load_and_preprocess_images`` (modes "crop" and "pad") and ``load_and_preprocess_images_square`` return
``images [N, 3, H, W] float32 in [0, 1]`` equal bit for bit to upstream's tensors (same Pillow, same bicubic resize,
``uint8 / 255`` in float32, padding value 1.0), and one ``ImageMeta`` per image. Sources: a folder (its image files
in sorted name order, as upstream's demos glob them), a glob pattern, a list of paths (or PIL images), one image,
or one video (frames sampled at ``fps``; PyAV reads mp4/mov/..., Pillow reads animated GIF/WebP/APNG).

Decoding decisions (upstream opens the file and calls ``.convert("RGB")``, compositing only mode RGBA on white):
  * every mode with transparency (RGBA, LA, PA, RGBa, palette or RGB/L with a transparent colour) is composited on
    white, so "transparent is white" holds beyond RGBA; opaque modes go through ``.convert("RGB")`` exactly as
    upstream (L, 1, P, CMYK (naive, no ICC), YCbCr, ...);
  * 16-bit greyscale (``I;16*``) is scaled to 8 bits (``round(v / 257)``): Pillow's ``.convert("RGB")`` clips it at
    255, which turns almost every pixel white; 32-bit ``I`` and float ``F`` images have no defined display range and
    are rejected;
  * EXIF orientation is ignored, as upstream and COLMAP do: pixel coordinates refer to the stored pixel array;
  * in a folder or glob, files whose extension is not an image's are skipped with a warning (sidecar .txt/.json,
    .DS_Store, videos); a file with an image extension that does not decode is an error.
Every input problem raises ``ImageInputError`` (a ``ValueError``) naming the file and the fix.
"""

from __future__ import annotations

import dataclasses
import glob as globlib
import hashlib
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from vggt_jax.geometry.cameras import warp_intrinsics
from vggt_jax.inference.pages import release_pages

Mode = Literal["crop", "pad"]
Source = str | os.PathLike | Sequence[str | os.PathLike | Image.Image] | Image.Image

PATCH_SIZE = 14
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"})
_ANIMATED = frozenset({".gif", ".webp", ".apng", ".png"})
# Formats a camera writes or an editor exports; intersected below with what this Pillow build can open.
_PHOTO_EXTENSIONS = ".jpg .jpeg .jpe .jfif .png .apng .bmp .dib .gif .tif .tiff .webp .ppm .pgm .pbm .pnm .tga .qoi "
_PHOTO_EXTENSIONS += ".avif .jp2 .j2k .jpx .jpf .psd .sgi"
Image.init()
IMAGE_EXTENSIONS = frozenset(
    e for e, fmt in Image.registered_extensions().items() if fmt in Image.OPEN and e in _PHOTO_EXTENSIONS.split()
)


class ImageInputError(ValueError):
    """An input image, folder, pattern or video that cannot be turned into model input; the message says why/how."""


@dataclasses.dataclass(frozen=True)
class ImageMeta:
    """Where one original image sits in the model input.

    Pixel coordinates follow VGGT's grid (pixel centres at integers, ``vggt_jax.geometry.cameras``). The warp is
    ``x_processed = scale * x_original + offset`` on corner-anchored coordinates (what a resize does), i.e.
    ``x_p = scale * (x_o + 0.5) + offset - 0.5`` on pixel centres. Offsets include crops (negative), pads and the
    centring of mixed sizes in one batch.

    Attributes:
      name: file name (``<video stem>_frame<k>.png`` for video frames, ``image_<k>.png`` for PIL inputs).
      path: the file read, or None.
      original_hw: ``(H, W)`` of the decoded image.
      processed_hw: ``(H, W)`` of the model input (the whole batch's).
      scale_xy: processed pixels per original pixel along x and y (they differ slightly: sides are rounded to 14).
      offset_xy: see above.
      content_box: ``(x0, y0, x1, y1)``, end-exclusive: processed pixels whose centre lies on the image, not padding.
    """

    name: str
    path: str | None
    original_hw: tuple[int, int]
    processed_hw: tuple[int, int]
    scale_xy: tuple[float, float]
    offset_xy: tuple[float, float]
    content_box: tuple[int, int, int, int]

    def intrinsics_to_original(self, intrinsics: np.ndarray) -> np.ndarray:
        """``[..., 3, 3]`` for the processed image -> the same camera in original-image pixels."""
        sx, sy = self.scale_xy
        return warp_intrinsics(intrinsics, (1 / sx, 1 / sy), (-self.offset_xy[0] / sx, -self.offset_xy[1] / sy))

    def intrinsics_to_processed(self, intrinsics: np.ndarray) -> np.ndarray:
        return warp_intrinsics(intrinsics, self.scale_xy, self.offset_xy)

    def points_to_original(self, xy: np.ndarray) -> np.ndarray:
        """``[..., 2]`` processed pixel coordinates (x, y) -> original pixel coordinates (tracks, observations)."""
        scale, offset = np.asarray(self.scale_xy), np.asarray(self.offset_xy)
        return (np.asarray(xy, np.float64) + 0.5 - offset) / scale - 0.5

    def points_to_processed(self, xy: np.ndarray) -> np.ndarray:
        scale, offset = np.asarray(self.scale_xy), np.asarray(self.offset_xy)
        return scale * (np.asarray(xy, np.float64) + 0.5) + offset - 0.5

    def content_mask(self) -> np.ndarray:
        """``[H, W]`` bool over the processed image: True on image content, False on padding."""
        mask = np.zeros(self.processed_hw, bool)
        x0, y0, x1, y1 = self.content_box
        mask[y0:y1, x0:x1] = True
        return mask

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ImageInput:
    """One image of a source, not decoded yet: ``load()`` returns the PIL image (decoding errors raise then)."""

    name: str
    path: str | None
    load: Callable[[], Image.Image]


# ----------------------------------------------------------------------------------------------- sources


def _is_video(path: Path) -> bool:
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        return True
    if path.suffix.lower() in _ANIMATED:
        try:
            with Image.open(path) as img:
                return getattr(img, "n_frames", 1) > 1
        except (OSError, UnidentifiedImageError):
            return False  # reported by the image decoder with the usual message
    return False


def _file_input(path: Path) -> ImageInput:
    return ImageInput(path.name, str(path), lambda: _open_image(path))


def _image_files(candidates: list[Path], where: str) -> list[Path]:
    dangling = [p for p in candidates if p.is_symlink() and not p.exists() and not p.name.startswith(".")]
    if dangling:
        links = ", ".join(f"{p.name} -> {os.readlink(p)}" for p in dangling[:5]) + (" ..." if len(dangling) > 5 else "")
        raise ImageInputError(
            f"{where}: {len(dangling)} symbolic link(s) point to a missing file ({links}); restore the target(s) "
            "or remove the link(s), so that no frame goes missing"
        )
    files = [p for p in candidates if p.is_file() and not p.name.startswith(".")]
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
    skipped = [p.name for p in files if p.suffix.lower() not in IMAGE_EXTENSIONS]
    if skipped:
        warnings.warn(
            f"{where}: skipped {len(skipped)} non-image file(s): {', '.join(skipped[:5])}"
            f"{' ...' if len(skipped) > 5 else ''}",
            stacklevel=3,
        )
    if not images:
        raise ImageInputError(
            f"{where} contains no image files (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}); "
            "point to a folder, pattern or list of images"
        )
    return images


def resolve_inputs(
    source: Source, *, fps: float = 1.0, max_frames: int | None = None
) -> list[ImageInput] | VideoFrames:
    """The images a source names, in order (a video's frames are decoded as they are iterated). See the module
    docstring for what a source can be."""
    if isinstance(source, Image.Image):
        return [ImageInput("image_0000.png", None, lambda: source)]
    if isinstance(source, str | os.PathLike):
        text = os.fspath(source)
        path = Path(text)
        if path.is_dir():
            return [_file_input(p) for p in _image_files(sorted(path.iterdir()), f"folder {path}")]
        if path.is_file():
            return VideoFrames(path, fps, max_frames) if _is_video(path) else [_file_input(path)]
        if any(c in text for c in "*?["):
            matches = sorted(Path(p) for p in globlib.glob(text, recursive=True))
            if not matches:
                raise ImageInputError(f"pattern {text!r} matches no file; check the folder and the extension")
            return [_file_input(p) for p in _image_files(matches, f"pattern {text!r}")]
        raise ImageInputError(f"{text}: no such file or folder; pass a folder, a glob pattern, image paths or a video")
    inputs = []
    for k, item in enumerate(source):
        if isinstance(item, ImageInput):  # already resolved (a sampled subset of a source's frames)
            inputs.append(item)
            continue
        if isinstance(item, Image.Image):
            inputs.append(ImageInput(f"image_{k:04d}.png", None, lambda item=item: item))
            continue
        path = Path(os.fspath(item))
        if not path.is_file():
            raise ImageInputError(f"{path}: not an image file (missing, or a folder); list image files only")
        inputs.append(_file_input(path))
    if not inputs:
        raise ImageInputError("At least 1 image is required: the list of images is empty")
    return inputs


class VideoFrames:
    """The frames of a video, one every ``1 / fps`` seconds (the first always), as ``ImageInput``s decoded while
    they are iterated: a long video is never in memory at once. ``len()`` decodes it once to count."""

    def __init__(self, path: Path, fps: float, max_frames: int | None):
        if fps <= 0:
            raise ImageInputError(f"fps must be > 0 to sample frames from {path}, got {fps}")
        self.path, self.fps, self.max_frames = path, fps, max_frames
        self._count: int | None = None

    def __iter__(self) -> Iterator[ImageInput]:
        count = 0
        for index, frame in _sample_frames(self.path, self.fps, self.max_frames):
            count += 1
            yield ImageInput(f"{self.path.stem}_frame{index:06d}.png", None, lambda f=frame: f)
        if count == 0:
            raise ImageInputError(f"video {self.path} has no decodable frame")
        self._count = count

    def __len__(self) -> int:
        if self._count is None:
            self._count = sum(1 for _ in self)
        return self._count


def _sample_frames(path: Path, fps: float, max_frames: int | None) -> Iterator[tuple[int, Image.Image]]:
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        try:
            import av
        except ImportError as e:
            raise ImageInputError(
                f"reading video {path} needs PyAV (pip install av==18.1.0); or extract its frames "
                "into a folder and pass the folder"
            ) from e
        timed = _pyav_frames(av, path)
    else:
        timed = _pil_frames(path)
    next_time, kept = 0.0, 0
    for index, (time, frame) in enumerate(timed):
        if time + 1e-6 < next_time:
            continue
        if max_frames is not None and kept == max_frames:
            warnings.warn(f"{path}: stopped after max_frames={max_frames} frames at {time:.2f} s", stacklevel=4)
            return
        yield index, frame
        kept += 1
        next_time = max(next_time + 1.0 / fps, time)


def _pyav_frames(av, path: Path) -> Iterator[tuple[float, Image.Image]]:
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for k, frame in enumerate(container.decode(stream)):
                rate = float(stream.average_rate or 30)
                yield (float(frame.time) if frame.time is not None else k / rate), frame.to_image()
    except (av.error.FFmpegError, IndexError) as e:
        raise ImageInputError(
            f"cannot decode video {path} ({e}); re-encode it (e.g. to H.264 mp4) or extract its frames"
        ) from e


def _pil_frames(path: Path) -> Iterator[tuple[float, Image.Image]]:
    time = 0.0
    with Image.open(path) as img:
        for frame in ImageSequence.Iterator(img):
            yield time, frame.convert("RGBA")  # GIF frames are palette images with transparency
            time += frame.info.get("duration", 100) / 1000.0


# ----------------------------------------------------------------------------------------------- decoding


def _open_image(path: Path) -> Image.Image:
    if path.stat().st_size == 0:
        raise ImageInputError(f"{path} is an empty (0-byte) file; re-copy or remove it")
    try:
        img = Image.open(path)
        img.load()  # decode now: a truncated file fails here, not halfway through the batch
    except Image.DecompressionBombError as e:
        raise ImageInputError(f"{path}: {e}; downscale it, or raise PIL.Image.MAX_IMAGE_PIXELS if it is trusted") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageInputError(f"{path} is not a readable image ({e}); re-export it as PNG/JPEG or remove it") from e
    return img


def to_rgb(img: Image.Image, name: str = "image") -> Image.Image:
    """Any supported PIL image -> mode RGB, transparency composited on white (module docstring)."""
    mode = img.mode
    if mode in ("I", "F"):
        raise ImageInputError(
            f"{name}: mode {mode} (32-bit integer/float) has no display range; save it as 8-bit RGB or greyscale"
        )
    if mode.startswith("I;16"):
        values = np.asarray(img, dtype=np.uint32)
        img = Image.fromarray(((values * 2 + 257) // 514).astype(np.uint8), mode="L")  # round(v / 257)
    if mode == "RGBA" or img.has_transparency_data:
        try:
            img = img if mode == "RGBA" else img.convert("RGBA")
        except ValueError as e:
            raise ImageInputError(f"{name}: cannot read the transparency of mode {mode} ({e}); save as RGBA PNG") from e
        img = Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), img)
    try:
        return img.convert("RGB")
    except ValueError as e:
        raise ImageInputError(f"{name}: mode {mode} cannot be converted to RGB ({e}); save it as RGB") from e


def decoded_rgb_sha256(img: Image.Image) -> str:
    """sha256 of the RGB bytes after ``to_rgb`` (checks a decoder against shared/fixtures' ``meta_json``)."""
    return hashlib.sha256(to_rgb(img).tobytes()).hexdigest()


# ----------------------------------------------------------------------------------------------- resizing


def _fit_size(width: int, height: int, mode: Mode, target: int, name: str) -> tuple[int, int]:
    """Upstream's resize target: the long side (crop: the width) becomes ``target``, the other side keeps the aspect
    ratio rounded to a multiple of 14 (Python's round, half to even, as upstream)."""
    if mode == "pad" and width < height:
        new_width, new_height = round(width * (target / height) / PATCH_SIZE) * PATCH_SIZE, target
    else:
        new_width, new_height = target, round(height * (target / width) / PATCH_SIZE) * PATCH_SIZE
    if min(new_width, new_height) < PATCH_SIZE:
        raise ImageInputError(
            f"{name}: {width}x{height} is too elongated: resized to {new_width}x{new_height}, below "
            f"one {PATCH_SIZE}-pixel patch; crop it to an aspect ratio under ~1:30"
        )
    return new_width, new_height


def _pad_to(arr: np.ndarray, height: int, width: int) -> tuple[np.ndarray, int, int]:
    """Centre ``arr [h, w, 3]`` on a white ``[height, width, 3]`` canvas (upstream pads with 1.0 = 255 / 255)."""
    top, left = (height - arr.shape[0]) // 2, (width - arr.shape[1]) // 2
    pads = ((top, height - arr.shape[0] - top), (left, width - arr.shape[1] - left), (0, 0))
    return np.pad(arr, pads, constant_values=255), left, top


def _to_float(arrays: list[np.ndarray]) -> np.ndarray:
    # ToTensor divides float32(u8) by 255 in float32; so does this, hence bit-exact.
    return np.stack(arrays).transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255)


@dataclasses.dataclass(frozen=True)
class Fitted:
    """One image resized (and cropped) for the model, before the common padding: ``pixels [h, w, 3] uint8``, the
    original ``(H, W)``, ``scale`` and ``offset`` (original pixel -> ``pixels``) and the content ``box`` in it."""

    pixels: np.ndarray
    original_hw: tuple[int, int]
    scale: tuple[float, float]
    offset: tuple[float, float]
    box: tuple[int, int, int, int]


class _Spool:
    """The fitted images' pixels until every size is known: in memory, or appended to one file (``path``) so that a
    long sequence holds one image at a time."""

    def __init__(self, path: Path | None):
        self.path, self.shapes, self.offsets, self.arrays, self.size = path, [], [], [], 0
        self.file = open(path, "wb") if path is not None else None  # noqa: SIM115 (closed in finish / close)

    def append(self, pixels: np.ndarray) -> None:
        self.shapes.append(pixels.shape)
        if self.file is None:
            self.arrays.append(pixels)
            return
        self.offsets.append(self.size)
        self.file.write(np.ascontiguousarray(pixels, np.uint8).tobytes())
        self.size += pixels.size

    def __getitem__(self, k: int) -> np.ndarray:
        if self.file is None:
            return self.arrays[k]
        count = math.prod(self.shapes[k])
        return np.fromfile(self.path, np.uint8, count=count, offset=self.offsets[k]).reshape(self.shapes[k])

    def finish(self) -> None:
        if self.file is not None:
            self.file.close()

    def close(self) -> None:
        self.finish()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def fit_and_pad(
    source: Source,
    fit: Callable[[Image.Image, str], Fitted],
    *,
    fps: float = 1.0,
    max_frames: int | None = None,
    into: str | os.PathLike | None = None,
) -> tuple[np.ndarray, list[ImageMeta]]:
    """Both families' loading: every image of ``source`` decoded and ``fit`` (resize / crop), then centre-padded
    with white to the largest H and W (with a warning when sizes differ, as upstream) -> ``images [N, 3, H, W]
    float32`` (``uint8 / 255``) and one ``ImageMeta`` each.

    ``into``: a ``.npy`` path: the images are written there and returned as a read-only memory map, and only one
    image is in memory at a time (long sequences); the fitted pixels wait in a spool file beside it."""
    target = None if into is None else Path(into)
    spool = _Spool(None if target is None else target.with_name(f".{target.name}.spool"))
    try:
        placed = []
        for item in resolve_inputs(source, fps=fps, max_frames=max_frames):
            fitted = fit(to_rgb(item.load(), item.path or item.name), item.path or item.name)
            spool.append(fitted.pixels)
            placed.append((item.name, item.path, dataclasses.replace(fitted, pixels=np.empty(0, np.uint8))))
        spool.finish()
        shapes = {shape[:2] for shape in spool.shapes}
        out_h, out_w = max(s[0] for s in shapes), max(s[1] for s in shapes)
        if len(shapes) > 1:
            warnings.warn(
                f"Found images with different shapes (H, W): {sorted(shapes)}; centre-padding all of them with "
                f"white to {out_h}x{out_w}",
                stacklevel=3,
            )
        shape = (len(placed), 3, out_h, out_w)
        if target is None:
            images = np.empty(shape, np.float32)
        else:
            images = np.lib.format.open_memmap(target, mode="w+", dtype=np.float32, shape=shape)
        metas = []
        for k, (name, path, f) in enumerate(placed):
            pixels, dx, dy = _pad_to(spool[k], out_h, out_w)
            images[k] = pixels.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
            x0, y0, x1, y1 = f.box
            offset = (float(f.offset[0] + dx), float(f.offset[1] + dy))
            box = (x0 + dx, y0 + dy, x1 + dx, y1 + dy)
            metas.append(ImageMeta(name, path, f.original_hw, (out_h, out_w), f.scale, offset, box))
            if k % 8 == 7:
                release_pages(images)
        if target is not None:
            release_pages(images)
            del images
            images = np.load(target, mmap_mode="r")
    except BaseException:
        if target is not None:
            target.unlink(missing_ok=True)
        raise
    finally:
        spool.close()
    return images, metas


def load_and_preprocess_images(
    source: Source,
    mode: Mode = "crop",
    *,
    target_size: int = 518,
    fps: float = 1.0,
    max_frames: int | None = None,
    into: str | os.PathLike | None = None,
) -> tuple[np.ndarray, list[ImageMeta]]:
    """Upstream's ``load_and_preprocess_images``.

    Args:
      source: folder, glob pattern, list of paths or PIL images, one image, or one video.
      mode: "crop": width -> ``target_size``, height by aspect ratio (multiple of 14), centre-cropped to
        ``target_size`` if taller; "pad": long side -> ``target_size``, padded with white to a square.
      target_size: 518 upstream; any multiple of 14.
      fps, max_frames: frame sampling for a video source.
      into: write the images to this ``.npy`` file and return it memory-mapped (``fit_and_pad``).
    Returns:
      ``images [N, 3, H, W] float32`` in [0, 1] and one ``ImageMeta`` per image. Images of different shapes (crop
      mode) are centre-padded with white to the largest H and W, with a warning, as upstream.
    """
    if mode not in ("crop", "pad"):
        raise ValueError(f"mode must be 'crop' or 'pad', got {mode!r}")
    if target_size % PATCH_SIZE:
        raise ValueError(f"target_size must be a multiple of {PATCH_SIZE}, got {target_size}")

    def fit(rgb: Image.Image, name: str) -> Fitted:
        width, height = rgb.size
        new_width, new_height = _fit_size(width, height, mode, target_size, name)
        arr = np.asarray(rgb.resize((new_width, new_height), Image.Resampling.BICUBIC))
        left = top = 0
        if mode == "crop" and new_height > target_size:
            top = -((new_height - target_size) // 2)
            arr = arr[-top : -top + target_size]
        if mode == "pad":
            arr, left, top = _pad_to(arr, target_size, target_size)
        box = (max(left, 0), max(top, 0), left + new_width, min(top + new_height, arr.shape[0]))
        return Fitted(arr, (height, width), (new_width / width, new_height / height), (left, top), box)

    return fit_and_pad(source, fit, fps=fps, max_frames=max_frames, into=into)


def load_and_preprocess_images_square(
    source: Source, target_size: int = 1024, *, fps: float = 1.0, max_frames: int | None = None
) -> tuple[np.ndarray, np.ndarray, list[ImageMeta]]:
    """Upstream's ``load_and_preprocess_images_square`` (used by its COLMAP demo): pad to a square with black, the
    image centred, then resize to ``target_size``.

    Returns:
      ``images [N, 3, T, T] float32``; ``original_coords [N, 6] float32`` = ``[x1, y1, x2, y2, width, height]``:
      the image's extent in the resized square and its original size (upstream's layout); ``ImageMeta`` per image.
    """
    arrays, coords, metas = [], [], []
    for item in resolve_inputs(source, fps=fps, max_frames=max_frames):
        rgb = to_rgb(item.load(), item.path or item.name)
        width, height = rgb.size
        max_dim = max(width, height)
        left, top = (max_dim - width) // 2, (max_dim - height) // 2
        scale = target_size / max_dim
        x1, y1, x2, y2 = left * scale, top * scale, (left + width) * scale, (top + height) * scale
        coords.append([x1, y1, x2, y2, width, height])
        square = Image.new("RGB", (max_dim, max_dim), (0, 0, 0))
        square.paste(rgb, (left, top))
        arrays.append(np.asarray(square.resize((target_size, target_size), Image.Resampling.BICUBIC)))
        # Pixels whose centre (j + 0.5 in corner-anchored coordinates) lies on the image.
        box = tuple(math.ceil(v - 0.5) for v in (x1, y1, x2, y2))
        metas.append(
            ImageMeta(item.name, item.path, (height, width), (target_size, target_size), (scale, scale), (x1, y1), box)
        )
    return _to_float(arrays), np.asarray(coords, np.float64).astype(np.float32), metas


def original_pixel_coords(metas: Sequence[ImageMeta]) -> np.ndarray:
    """``[S, H, W, 2]`` float64: where each model-input pixel (x, y) lies in its original image (VGGT's pixel grid;
    padding maps outside the image). Feeds the 2D observations of the COLMAP export."""
    height, width = metas[0].processed_hw
    grid = np.stack(np.meshgrid(np.arange(width), np.arange(height)), axis=-1)
    return np.stack([meta.points_to_original(grid) for meta in metas])


def original_pixels(metas: Sequence[ImageMeta], frame: np.ndarray, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """``[P, 2]`` float64: ``original_pixel_coords(metas)[frame, row, col]`` without the dense array."""
    out = np.empty((len(frame), 2), np.float64)
    for f in np.unique(frame):
        at = frame == f
        out[at] = metas[f].points_to_original(np.stack([col[at], row[at]], axis=-1))
    return out


# ----------------------------------------------------------------------------------------------- checks


def min_track_head_side(corr_levels: int = 7, down_ratio: int = 2) -> int:
    """Smallest input side the track head accepts: its feature map (``1 / down_ratio`` of the input) is average-
    pooled ``corr_levels - 1`` times by 2, and the coarsest level must keep at least one pixel (128 for VGGT-1B)."""
    return down_ratio * 2 ** (corr_levels - 1)


def check_track_head_size(height: int, width: int, *, corr_levels: int = 7, down_ratio: int = 2) -> None:
    """Raise ``ImageInputError`` if ``H x W`` model input is too small for tracking (VGGT-1B: both sides >= 128, so
    >= 140 as multiples of 14)."""
    need = min_track_head_side(corr_levels, down_ratio)
    if min(height, width) < need:
        smallest = math.ceil(need / PATCH_SIZE) * PATCH_SIZE
        raise ImageInputError(
            f"images are {height}x{width} after preprocessing, but the track head's {corr_levels}-level correlation "
            f"pyramid needs both sides >= {need} px ({smallest} as a multiple of {PATCH_SIZE}); use mode='pad' "
            "(always square), less elongated images, or run without tracking"
        )
