"""Image and label decoding: 16-bit scaling, grayscale to RGB, palettes, TIFF stacks, arrays."""
import numpy as np
import pytest
from PIL import Image

from cenet_jax.data.decode import frame_count, image_hw, read_image, read_label, to_uint8
from cenet_jax.data.errors import DataError

from .fakes import save


def test_uint16_is_scaled_by_its_range_not_clipped(tmp_path):
    values = np.array([[0, 1000, 32768, 65535]], np.uint16).repeat(3, axis=0)
    path = save(tmp_path / 'deep.png', values)
    image = read_image(path)
    assert image.dtype == np.uint8 and image.shape == (3, 4, 3)
    np.testing.assert_array_equal(image[0, :, 0], [0, 4, 128, 255])  # 1000 -> 4, not clipped to 255
    assert np.array_equal(image[..., 0], image[..., 2])  # grey replicated to 3 channels


def test_high_bit_depth_modes():
    ramp = np.array([[100, 200, 300]], np.uint16)
    np.testing.assert_allclose(to_uint8(ramp, 'minmax'), [[0, 127.5, 255]], atol=0.5)
    np.testing.assert_array_equal(to_uint8(np.array([[-32768, 32767]], np.int16)), [[0, 255]])
    ct = np.array([[-1024.0, 0.0, 1024.0]], np.float32)  # floats have no dtype range: min..max
    np.testing.assert_allclose(to_uint8(ct), [[0, 127.5, 255]], atol=0.5)
    with pytest.raises(DataError, match='high_bit_depth'):
        to_uint8(ramp, 'clip')


def test_16_bit_tiff_and_npy_images(tmp_path):
    values = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1024)
    tiff = save(tmp_path / 'ct.tif', values)
    np.save(tmp_path / 'ct.npy', values)
    from_tiff, from_npy = read_image(tiff), read_image(tmp_path / 'ct.npy')
    np.testing.assert_array_equal(from_tiff, from_npy)
    assert from_tiff[7, 7, 0] == round(63 * 1024 * 255 / 65535)


def test_palette_label_read_as_luminance_or_index(tmp_path):
    palette_image = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), 'P')
    palette_image.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    palette_image.save(tmp_path / 'manual.gif')
    np.testing.assert_array_equal(read_label(tmp_path / 'manual.gif'), [[0, 255], [255, 0]])
    np.testing.assert_array_equal(read_label(tmp_path / 'manual.gif', palette_as_index=True), [[0, 1], [1, 0]])


def test_multipage_tiff_frames(tmp_path):
    pages = [Image.fromarray(np.full((6, 5), 10 * k, np.uint8)) for k in range(4)]
    path = tmp_path / 'stack.tif'
    pages[0].save(path, save_all=True, append_images=pages[1:])
    assert frame_count(path) == 4
    assert image_hw(path, frame=2) == (6, 5)
    for k in range(4):
        assert read_image(path, frame=k)[0, 0, 0] == 10 * k
        assert read_label(path, frame=k)[0, 0] == 10 * k


def test_rgba_image_drops_alpha(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    image = read_image(save(tmp_path / 'a.png', rgba))
    assert image.shape == (4, 4, 3) and image[0, 0, 0] == 200
