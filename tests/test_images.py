"""Image loading: every PIL mode becomes 8-bit RGB, transparency on white, EXIF orientation, downscaling that
keeps the aspect ratio, and missing, truncated, foreign or oversized files refused with ImageLoadError."""

import numpy as np
import pytest
from PIL import Image

from retrieval import images
from retrieval.images import ImageLoadError, ImageTooLargeError, load_gray, load_rgb, resize_max_side


def test_cmyk_grayscale_palette_and_16_bit_become_8_bit_rgb(tmp_path):
    Image.new("CMYK", (8, 6), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")  # red in CMYK
    Image.new("L", (8, 6), 77).save(tmp_path / "gray.png")
    Image.fromarray(np.full((6, 8), 4000, dtype=np.uint16)).save(tmp_path / "deep.png")
    palette = Image.new("P", (8, 6), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    palette.save(tmp_path / "palette.png")
    red = np.asarray(load_rgb(tmp_path / "cmyk.jpg")).astype(int)
    assert red.shape == (6, 8, 3) and red[..., 0].min() > 200 and red[..., 1:].max() < 60
    assert np.array_equal(np.asarray(load_rgb(tmp_path / "gray.png")), np.full((6, 8, 3), 77, np.uint8))
    assert (
        np.asarray(load_rgb(tmp_path / "deep.png")).max() == 255
    )  # 16-bit range scaled, not clipped at 4000
    assert tuple(np.asarray(load_rgb(tmp_path / "palette.png"))[0, 0]) == (10, 200, 30)


def test_transparency_is_composited_on_white(tmp_path):
    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    assert tuple(np.asarray(load_rgb(tmp_path / "clear.png"))[0, 0]) == (255, 255, 255)


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when shown
    Image.new("RGB", (40, 20)).save(tmp_path / "rotated.jpg", exif=exif)
    assert load_rgb(tmp_path / "rotated.jpg").size == (20, 40)


def test_max_side_downscales_keeping_the_aspect_ratio(tmp_path):
    Image.new("RGB", (400, 100), (0, 90, 0)).save(tmp_path / "wide.jpg")
    assert load_rgb(tmp_path / "wide.jpg", max_side=100).size == (100, 25)
    assert load_rgb(tmp_path / "wide.jpg", max_side=1000).size == (400, 100)  # never upscaled
    assert load_gray(tmp_path / "wide.jpg", max_side=100).shape == (25, 100)
    with pytest.raises(ValueError, match="positive"):
        resize_max_side(Image.new("RGB", (4, 4)), 0)


def test_missing_truncated_and_non_images_raise_image_load_error(tmp_path):
    Image.new("RGB", (64, 64), (10, 20, 30)).save(tmp_path / "full.jpg", quality=90)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.jpg").write_text("not an image")
    (tmp_path / "empty.jpg").write_bytes(b"")
    for name, reason in [
        ("absent.jpg", "not found"),
        ("truncated.jpg", "cannot decode"),
        ("text.jpg", "not an image in a format that can be read"),
        ("empty.jpg", "not an image in a format that can be read"),
    ]:
        with pytest.raises(ImageLoadError, match=reason):
            load_rgb(tmp_path / name)


def test_images_over_the_pixel_limit_are_refused_before_decoding(tmp_path, monkeypatch):
    Image.new("RGB", (100, 100)).save(tmp_path / "big.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 5000)
    with pytest.raises(ImageTooLargeError, match="exceeds 5000 pixels"):
        load_rgb(tmp_path / "big.png")


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\nnewpath 0 0 moveto 16 16 lineto stroke\nshowpage\n%%EOF\n"


def test_only_allowed_formats_are_decoded_and_no_external_program_runs(tmp_path, monkeypatch):
    import subprocess

    def no_programs(*arguments, **keywords):
        raise AssertionError(f"an external program was started: {arguments}")

    for name in ("Popen", "run", "call", "check_call", "check_output"):
        monkeypatch.setattr(subprocess, name, no_programs)
    (tmp_path / "photo.jpg").write_bytes(EPS)  # an EPS file named like a photo
    (tmp_path / "photo.pdf").write_bytes(b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n")
    for name in ("photo.jpg", "photo.pdf"):
        with pytest.raises(images.UnsupportedFormatError, match="not an image in a format that can be read"):
            load_rgb(tmp_path / name)


@pytest.mark.parametrize(("brand", "kind"), [(b"heic", "HEIC"), (b"mif1", "HEIF"), (b"avif", "AVIF")])
def test_heic_and_avif_are_refused_with_what_to_do(tmp_path, brand, kind):
    (tmp_path / "photo.heic").write_bytes(b"\x00\x00\x00\x18ftyp" + brand + b"\x00" * 32)
    with pytest.raises(
        images.UnsupportedFormatError, match=f"{kind} images are not supported; convert it to JPEG"
    ):
        load_rgb(tmp_path / "photo.heic")


def test_an_animated_gif_decodes_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (20, 10), color) for color in ((200, 0, 0), (0, 200, 0))]
    frames[0].save(tmp_path / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    rgb = load_rgb(tmp_path / "animated.gif")
    assert rgb.size == (20, 10) and rgb.getpixel((5, 5))[0] > 150


def test_large_jpegs_are_decoded_at_reduced_size_within_the_pixel_budget(tmp_path):
    Image.new("RGB", (4000, 2000), (90, 120, 150)).save(tmp_path / "large.jpg", quality=80)
    with pytest.raises(ImageTooLargeError, match="4000x2000 exceeds 1000000 pixels"):
        images.decode(tmp_path / "large.jpg", max_pixels=1_000_000)
    reduced = images.decode(tmp_path / "large.jpg", max_side=500, max_pixels=1_000_000)  # decoded at 1/8
    assert reduced.rgb.size == (500, 250) and reduced.original_size == (4000, 2000)
    kept = images.decode(tmp_path / "large.jpg", max_side=499, reduce_only=True)
    assert kept.rgb.size == (500, 250)  # the 1/8 scale, just above 499: nothing resized
    partly = images.decode(tmp_path / "large.jpg", max_side=700, reduce_only=True)
    assert partly.rgb.size == (1000, 500)  # the 1/4 scale, never below 700


def test_the_original_size_follows_the_exif_orientation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90°: stored 400x200, shown 200x400
    Image.new("RGB", (400, 200)).save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    decoded = images.decode(tmp_path / "rotated.jpg", max_side=100)
    assert decoded.rgb.size == (50, 100) and decoded.original_size == (200, 400)
