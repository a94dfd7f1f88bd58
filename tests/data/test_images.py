import io as bytes_io

import numpy as np
import pytest
from PIL import Image

from captioner.data.images import load_image, load_resized, resize_image
from captioner.errors import ImageError
from tests.helpers import preprocess_image


def save(tmp_path, image, name, **options):
    path = tmp_path / name
    image.save(path, **options)
    return str(path)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    rgb = load_image(save(tmp_path, Image.fromarray(grey, "L"), "g.png"))
    assert rgb.shape == (3, 4, 3) and rgb.dtype == np.uint8
    assert (rgb == grey[:, :, None]).all()


def test_rgba_is_composited_on_white(tmp_path):
    pixels = np.zeros((2, 2, 4), np.uint8)
    pixels[0, 0] = (255, 0, 0, 255)  # opaque red
    pixels[0, 1] = (0, 0, 255, 0)    # fully transparent blue
    pixels[1, 0] = (0, 0, 0, 128)    # half-transparent black
    rgb = load_image(save(tmp_path, Image.fromarray(pixels, "RGBA"), "a.png"))
    assert tuple(rgb[0, 0]) == (255, 0, 0)
    assert tuple(rgb[0, 1]) == (255, 255, 255)
    assert abs(int(rgb[1, 0, 0]) - 127) <= 1


def test_palette_with_and_without_transparency(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    image.putpixel((1, 0), 1)
    rgb = load_image(save(tmp_path, image, "p.png"))
    assert tuple(rgb[0, 0]) == (255, 0, 0) and tuple(rgb[0, 1]) == (0, 255, 0)
    rgb = load_image(save(tmp_path, image, "pt.png", transparency=0))
    assert tuple(rgb[0, 0]) == (255, 255, 255) and tuple(rgb[0, 1]) == (0, 255, 0)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    image = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # pure red in CMYK
    rgb = load_image(save(tmp_path, image, "c.jpg", quality=95))
    assert rgb.shape == (4, 4, 3)
    assert rgb[..., 0].min() > 200 and rgb[..., 1].max() < 60 and rgb[..., 2].max() < 60


def test_sixteen_bit_is_rescaled(tmp_path):
    values = np.array([[0, 65535], [32896, 257 * 10]], np.uint16)
    rgb = load_image(save(tmp_path, Image.fromarray(values), "d.png"))
    assert rgb[..., 0].tolist() == [[0, 255], [128, 10]]


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((8, 12, 3), np.uint8)  # 8 rows, 12 columns; a red top-left block
    pixels[:4, :4] = (255, 0, 0)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    rgb = load_image(save(tmp_path, image, "r.jpg", exif=exif, quality=100))
    assert rgb.shape == (12, 8, 3)  # now 12 rows, 8 columns
    assert rgb[1, 6, 0] > 200 and rgb[1, 6, 1] < 80  # the red block moved to the top right
    assert rgb[1, 1, 0] < 80


def test_truncated_file_names_the_file(tmp_path):
    buffer = bytes_io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(
        buffer, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[:400])
    with pytest.raises(ImageError, match="cut.png"):
        load_image(str(path))


def test_non_image_missing_and_folder_are_clear_errors(tmp_path):
    (tmp_path / "notes.jpg").write_text("not an image")
    with pytest.raises(ImageError, match="Not an image.*notes.jpg"):
        load_image(str(tmp_path / "notes.jpg"))
    with pytest.raises(ImageError, match="not found.*gone.png"):
        load_image(str(tmp_path / "gone.png"))
    with pytest.raises(ImageError, match="folder"):
        load_image(str(tmp_path))


def test_oversized_image_is_refused_before_decoding(tmp_path):
    path = save(tmp_path, Image.new("RGB", (300, 200)), "big.png")
    with pytest.raises(ImageError, match="too large.*300x200"):
        load_image(path, max_pixels=50_000)
    assert load_image(path, max_pixels=60_000).shape == (200, 300, 3)


def test_preprocess_keeps_whole_image_and_scales_for_the_backbone():
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:, 20:] = 255  # right half white
    small = preprocess_image(rgb, 8, "small")
    assert small.shape == (8, 8, 3) and small.dtype == np.float32
    assert np.allclose(small[:, :3], -1.0) and np.allclose(small[:, -3:], 1.0)
    resnet = preprocess_image(rgb, 8, "resnet50")  # caffe: BGR, mean subtracted
    assert np.allclose(resnet[0, 0], [-103.939, -116.779, -123.68], atol=1e-3)


def test_a_large_jpeg_decodes_at_a_reduced_scale_to_nearly_the_same_pixels(tmp_path):
    """libjpeg's DCT scaling (1/4 here) then a resize, against a full decode and the same
    resize: the contract is a mean difference under 1.5 grey levels, none over 40."""
    from matplotlib import cbook
    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as hopper:
        photo = hopper.convert("RGB").resize((640, 480))
    path = save(tmp_path, photo, "photo.jpg", quality=90)
    with Image.open(path) as image:
        image.draft(None, (96, 96))
        assert image.size == (160, 120)  # the reduced decode does happen
    reduced = load_resized(path, 96)
    full = resize_image(load_image(path), 96)
    difference = np.abs(reduced.astype(int) - full.astype(int))
    assert reduced.shape == full.shape == (96, 96, 3) and reduced.dtype == np.uint8
    assert difference.mean() < 1.5 and difference.max() <= 40
    small = save(tmp_path, photo.resize((150, 100)), "small.jpg")  # under 2x: decoded whole
    np.testing.assert_array_equal(load_resized(small, 96), resize_image(load_image(small), 96))
