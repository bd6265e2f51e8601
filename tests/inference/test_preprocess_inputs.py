"""Image sources (folder, glob, list, video) and every bad input: one ImageInputError that names file and fix."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
from PIL import Image

from vggt_jax.inference.preprocess import (
    ImageInputError,
    check_track_head_size,
    load_and_preprocess_images,
    min_track_head_side,
    resolve_inputs,
    to_rgb,
)


def gradient(w: int = 64, h: int = 48) -> Image.Image:
    yy, xx = np.mgrid[:h, :w]
    return Image.fromarray(np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) % 256], -1).astype(np.uint8))


@pytest.fixture()
def folder(tmp_path):
    for name in ["b.png", "a.jpg", "c.png"]:
        gradient().save(tmp_path / name)
    return tmp_path


def test_folder_is_sorted_and_skips_non_images(folder):
    (folder / "notes.txt").write_text("not an image")
    (folder / ".DS_Store").write_bytes(b"\0\0")
    (folder / "sub").mkdir()
    with pytest.warns(UserWarning, match=r"skipped 1 non-image file\(s\): notes.txt"):
        inputs = resolve_inputs(folder)
    assert [i.name for i in inputs] == ["a.jpg", "b.png", "c.png"]


def test_glob_and_list(folder):
    assert [i.name for i in resolve_inputs(str(folder / "*.png"))] == ["b.png", "c.png"]
    assert [i.name for i in resolve_inputs([folder / "c.png", folder / "a.jpg"])] == ["c.png", "a.jpg"]
    with pytest.raises(ImageInputError, match="matches no file"):
        resolve_inputs(str(folder / "*.tif"))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda d: d, "contains no image files"),
        (lambda d: (d / "x.txt").write_text("x") and d, "contains no image files"),
        (lambda d: d / "missing.png", "no such file or folder"),
        (lambda d: [d / "missing.png"], "not an image file"),
        (lambda d: [], "At least 1 image"),
    ],
)
def test_bad_sources(tmp_path, make, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ImageInputError, match=match):
            load_and_preprocess_images(make(tmp_path))


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "empty \\(0-byte\\)"),
        (b"this is not a png", "not a readable image"),
        ("truncated", "not a readable image"),
    ],
)
def test_corrupt_files_name_the_file(folder, content, match):
    bad = folder / "d_bad.png"
    if content == "truncated":
        gradient(200, 200).save(bad)
        bad.write_bytes(bad.read_bytes()[:300])
    else:
        bad.write_bytes(content)
    with pytest.raises(ImageInputError, match=match) as info:
        load_and_preprocess_images(folder)
    assert "d_bad.png" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_modes_converted_like_upstream():
    """Opaque modes go through PIL's convert('RGB'), as upstream's; alpha modes are composited on white."""
    rgb = gradient()
    for mode in ["L", "P", "CMYK", "1", "YCbCr"]:
        img = rgb.convert(mode)
        np.testing.assert_array_equal(np.asarray(to_rgb(img)), np.asarray(img.convert("RGB")), err_msg=mode)
    rgba = rgb.copy()
    rgba.putalpha(0)
    assert np.all(np.asarray(to_rgb(rgba)) == 255)
    la = rgb.convert("LA")
    la.putalpha(0)
    assert np.all(np.asarray(to_rgb(la)) == 255)
    palette = rgb.convert("P")
    palette.info["transparency"] = palette.getpixel((0, 0))
    out = np.asarray(to_rgb(palette))
    assert tuple(out[0, 0]) == (255, 255, 255)
    np.testing.assert_array_equal(
        out[np.asarray(palette) != palette.getpixel((0, 0))],
        np.asarray(palette.convert("RGB"))[np.asarray(palette) != palette.getpixel((0, 0))],
    )


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    values = (np.arange(64 * 48).reshape(48, 64) * 21).astype(np.uint16)
    path = tmp_path / "grey16.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as img:
        assert img.mode.startswith("I;16")
        out = np.asarray(to_rgb(img))[..., 0]
    np.testing.assert_array_equal(out, np.round(values / 257.0).astype(np.uint8))


@pytest.mark.parametrize("mode", ["I", "F"])
def test_wide_range_modes_are_rejected(mode):
    with pytest.raises(ImageInputError, match=f"mode {mode}"):
        to_rgb(Image.new(mode, (8, 8)), "depth.tif")


def test_too_elongated(tmp_path):
    gradient(2000, 10).save(tmp_path / "strip.png")
    with pytest.raises(ImageInputError, match="strip.png.*too elongated"):
        load_and_preprocess_images(tmp_path / "strip.png")


def test_track_head_size_check():
    assert min_track_head_side() == 128 and min_track_head_side(corr_levels=3) == 8
    check_track_head_size(140, 518)
    with pytest.raises(ImageInputError, match="126x518.*>= 128 px \\(140 as a multiple of 14\\).*mode='pad'"):
        check_track_head_size(126, 518)


def test_bad_arguments(folder):
    with pytest.raises(ValueError, match="mode"):
        load_and_preprocess_images(folder, mode="stretch")
    with pytest.raises(ValueError, match="multiple of 14"):
        load_and_preprocess_images(folder, target_size=500)


def test_animated_gif_is_sampled_by_time(tmp_path):
    frames = [Image.new("RGB", (70, 56), (20 * k, 0, 0)) for k in range(10)]
    path = tmp_path / "clip.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=250, loop=0)  # 4 frames per second
    images, metas = load_and_preprocess_images(path, fps=2.0)
    assert [m.name for m in metas] == [f"clip_frame{k:06d}.png" for k in (0, 2, 4, 6, 8)]
    assert images.shape == (5, 3, 420, 518)  # 56 * 518 / 70 = 414.4 -> 30 patches
    with pytest.warns(UserWarning, match="max_frames=2"):
        assert len(resolve_inputs(path, fps=4.0, max_frames=2)) == 2


def test_video_file_via_pyav(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for k in range(20):  # 2 seconds
            arr = np.full((48, 64, 3), 12 * k, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    images, metas = load_and_preprocess_images(path, fps=2.0)
    assert [m.name for m in metas] == [f"clip_frame{k:06d}.png" for k in (0, 5, 10, 15)]
    assert metas[0].original_hw == (48, 64) and images.shape[0] == 4
    broken = tmp_path / "broken.mp4"
    shutil.copy(path, broken)
    broken.write_bytes(b"\0" * 100)
    with pytest.raises(ImageInputError, match="broken.mp4"):
        load_and_preprocess_images(broken)


def test_dangling_symlink_in_a_folder_is_named(folder):
    (folder / "d.png").symlink_to(folder / "gone.png")
    with pytest.raises(ImageInputError, match=r"1 symbolic link\(s\) point to a missing file \(d.png -> .*gone.png\)"):
        load_and_preprocess_images(folder)


@pytest.mark.parametrize("family", ["vggt", "omega"])
def test_into_a_memory_map_is_the_same_images(folder, family, tmp_path_factory):
    """Long sequences load into a .npy memory map one image at a time: same bits, same metas, no spool left."""
    from vggt_jax.inference.preprocess_omega import load_and_preprocess_images_omega

    gradient(90, 40).save(folder / "d_wide.png")  # a second size: the common padding is exercised
    load = {
        "vggt": lambda **kw: load_and_preprocess_images(folder, target_size=56, **kw),
        "omega": lambda **kw: load_and_preprocess_images_omega(folder, "balanced", 64, 16, **kw),
    }[family]
    with pytest.warns(UserWarning, match="different shapes"):
        images, metas = load()
    out = tmp_path_factory.mktemp("mapped") / "images.npy"
    with pytest.warns(UserWarning, match="different shapes"):
        mapped, mapped_metas = load(into=out)
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    np.testing.assert_array_equal(mapped, images)
    assert mapped_metas == metas
    assert [p.name for p in out.parent.iterdir()] == ["images.npy"]
