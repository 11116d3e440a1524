"""Each augmentation of the seed does what it says, on real MNIST digits and CIFAR-10 photos."""
from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from bench.data import load_dataset
from bench.train.augment import KEYS, build_augmentation


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """16 real MNIST test digits, float32 in [0, 1]; digits sit in the centre 20x20 box."""
    x, _ = load_dataset("mnist").numpy("test")
    return x[:16].astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """16 real CIFAR-10 test photos, float32 in [0, 1]."""
    x, _ = load_dataset("cifar10").numpy("test")
    return x[:16].astype(np.float32) / 255.0


def run(config: dict, images: np.ndarray, seed: int = 1) -> np.ndarray:
    return np.asarray(build_augmentation(config, seed=seed)(images, training=True))


@pytest.mark.parametrize("key, axis", [("horizontal_flip", 2), ("random_flip_left_right", 2),
                                       ("vertical_flip", 1), ("random_flip_up_down", 1)])
def test_flip_flips_exactly_or_leaves_alone(digits, key, axis):
    out = run({key: True}, digits)
    flipped = [np.array_equal(o, np.flip(x, axis - 1)) for o, x in zip(out, digits)]
    kept = [np.array_equal(o, x) for o, x in zip(out, digits)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 0 < sum(flipped) < len(digits)  # random: some flipped, some not


@pytest.mark.parametrize("degrees, k", [(90, 1), (180, 2), (-90, -1)])
def test_rotation_by_quarter_turns_matches_rot90(digits, degrees, k):
    out = run({"rotation_range": [degrees, degrees], "fill_mode": "constant"}, digits)
    np.testing.assert_allclose(out, np.rot90(digits, k, axes=(1, 2)), atol=1e-5)


def test_rotation_range_is_symmetric_degrees(digits):
    layer = build_augmentation({"rotation_range": 20}).get_layer("rotation")
    assert layer.get_config()["factor"] == pytest.approx((-20 / 360, 20 / 360))
    out = run({"rotation_range": 20}, digits)
    assert not np.allclose(out, digits)
    # a rotation about the centre keeps a centred digit's ink (up to interpolation)
    np.testing.assert_allclose(out.sum((1, 2, 3)), digits.sum((1, 2, 3)), rtol=0.15)


def test_rescale_rescales(digits):
    out = run({"rescale": 1 / 255}, digits * 255.0)
    np.testing.assert_allclose(out, digits, atol=1e-6)


def test_width_shift_moves_content_right_by_the_fraction(digits):
    out = run({"width_shift_range": [0.25, 0.25], "fill_mode": "constant"}, digits)
    np.testing.assert_allclose(out[:, :, 7:], digits[:, :, :-7], atol=1e-5)
    assert np.all(out[:, :, :7] == 0)


def test_height_shift_moves_content_down_by_the_fraction(digits):
    out = run({"height_shift_range": [-0.25, -0.25], "fill_mode": "constant"}, digits)
    np.testing.assert_allclose(out[:, :-7], digits[:, 7:], atol=1e-5)


def test_shear_shifts_rows_not_ink(digits):
    # a shear along x slides each row sideways: row sums stay, column sums change
    out = run({"shear_range": 20, "fill_mode": "constant"}, digits)
    layer = build_augmentation({"shear_range": 20}).get_layer("shear")
    t = math.tan(math.radians(20))
    assert layer.x_factor == pytest.approx((-t, t))
    assert layer.y_factor == (0.0, 0.0)
    np.testing.assert_allclose(out.sum(2), digits.sum(2), atol=1e-4)
    assert np.abs(out.sum(1) - digits.sum(1)).max() > 0.5


def test_zoom_in_by_two_magnifies_the_centre(digits):
    # zoom_range [0.5, 0.5]: the output shows the centre 14x14 of the image at twice the size
    out = run({"zoom_range": [0.5, 0.5], "fill_mode": "constant"}, digits)
    ratio = out.sum((1, 2, 3)) / (4 * digits[:, 7:21, 7:21].sum((1, 2, 3)))
    assert np.all((ratio > 0.85) & (ratio < 1.15)), ratio
    out = run({"zoom_range": [2.0, 2.0], "fill_mode": "constant"}, digits)  # zoom out: a quarter
    ratio = out.sum((1, 2, 3)) / digits.sum((1, 2, 3))
    assert np.all((ratio > 0.2) & (ratio < 0.3)), ratio


def test_random_crop_takes_exact_windows_per_image(digits):
    out = run({"random_crop": [20, 20]}, digits, seed=3)
    assert out.shape == (16, 20, 20, 1)
    offsets = []
    for o, x in zip(out, digits):
        hits = [(t, l) for t in range(9) for l in range(9) if np.array_equal(o, x[t:t + 20, l:l + 20])]
        assert hits, "every crop is an exact window of its image"
        offsets.append(hits[0])
    assert len(set(offsets)) > 1  # independent windows, not one per batch


def test_crop_padding_keeps_size_and_content(photos):
    out = run({"crop_padding": 4}, photos, seed=2)
    assert out.shape == photos.shape
    padded = np.pad(photos, ((0, 0), (4, 4), (4, 4), (0, 0)), mode="reflect")
    for o, p in zip(out, padded):
        assert any(np.array_equal(o, p[t:t + 32, l:l + 32]) for t in range(9) for l in range(9))


def test_brightness_range_multiplies_within_the_range(photos):
    out = run({"brightness_range": [0.5, 0.9]}, photos)  # < 1: nothing clips
    ratio = out.sum((1, 2, 3)) / photos.sum((1, 2, 3))
    assert np.all((ratio >= 0.5 - 1e-5) & (ratio <= 0.9 + 1e-5)), ratio
    assert ratio.std() > 0.01
    np.testing.assert_allclose(out, photos * ratio[:, None, None, None], atol=1e-5)


def test_random_brightness_adds_at_most_max_delta(photos):
    out = run({"random_brightness": 0.2}, photos)
    change = out.mean((1, 2, 3)) - photos.mean((1, 2, 3))
    assert np.all(np.abs(change) <= 0.2 + 1e-5), change
    assert change.max() > 0.02 and change.min() < -0.02  # both brighter and darker draws
    assert out.min() >= 0 and out.max() <= 1


def test_random_hue_changes_hue_not_value(photos):
    out = run({"random_hue": 0.2}, photos)
    hsv_in, hsv_out = np.asarray(tf.image.rgb_to_hsv(photos)), np.asarray(tf.image.rgb_to_hsv(out))
    np.testing.assert_allclose(hsv_out[..., 2], hsv_in[..., 2], atol=1e-4)  # value kept
    coloured = hsv_in[..., 1] > 0.3
    shift = (hsv_out[..., 0] - hsv_in[..., 0]) % 1.0
    shift = np.minimum(shift, 1.0 - shift)  # circular distance in turns
    assert shift[coloured].max() <= 0.2 + 1e-3
    assert np.median(shift[coloured]) > 0.005


def test_augmentation_in_tf_data_draws_anew_each_batch_and_repeats_with_seed(digits):
    def draws(seed):
        aug = build_augmentation({"rotation_range": 15, "horizontal_flip": True}, seed=seed)
        ds = tf.data.Dataset.from_tensors(digits).repeat(3).map(lambda b: aug(b, training=True))
        return [np.asarray(b) for b in ds]

    a, b = draws(7), draws(7)
    assert not np.allclose(a[0], a[1])  # a new draw per batch
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)  # same seed, same draws


def test_inference_leaves_images_alone(digits):
    aug = build_augmentation({"rotation_range": 30, "horizontal_flip": True, "random_brightness": 0.3})
    np.testing.assert_array_equal(np.asarray(aug(digits, training=False)), digits)


def test_every_seed_option_builds_one_pipeline(photos):
    config = {"rotation_range": 20, "width_shift_range": 0.1, "height_shift_range": 0.1,
              "brightness_range": [0.8, 1.2], "shear_range": 10, "zoom_range": 0.1,
              "horizontal_flip": True, "vertical_flip": True, "rescale": 1.0, "random_crop": [28, 28],
              "random_brightness": 0.1, "random_hue": 0.05}
    out = run(config, photos)
    assert out.shape == (16, 28, 28, 3) and np.isfinite(out).all()


@pytest.mark.parametrize("config, words", [
    ({"rotate": 10}, "unknown augmentation option"),
    ({"random_hue": 0.8}, "[0, 0.5]"),
    ({"fill_mode": "mirror"}, "fill_mode"),
    ({"brightness_range": [1.5, 0.5]}, "lower <= upper"),
    ({"zoom_range": [0.0, 1.0]}, "zoom_range"),
])
def test_bad_options_say_what_is_wrong(config, words):
    with pytest.raises(ValueError, match=None) as err:
        build_augmentation(config)
    assert words in str(err.value)
    if "unknown" in words:
        assert all(k in str(err.value) for k in KEYS)
