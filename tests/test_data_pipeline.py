"""tf.data pipelines over the real arrays: shapes, dtypes, ranges after resize and pad
to 227 (the seed's AlexNet input), channel conversion, order and seeded shuffling."""
from __future__ import annotations

import numpy as np
import pytest


def first(ds):
    images, labels = next(iter(ds))
    return images.numpy(), labels.numpy()


@pytest.mark.parametrize("method", ["resize", "pad"])
def test_mnist_to_227_grayscale_and_rgb(mnist, method):
    for channels in (None, 3):
        x, y = first(mnist.pipeline("train", 4, image_size=227, resize_method=method, channels=channels, limit=4))
        assert x.shape == (4, 227, 227, channels or 1) and x.dtype == np.float32
        assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.9
        assert y.dtype == np.int64 and y.tolist() == [5, 0, 4, 1]
        if channels == 3:  # grayscale copied into R, G and B
            np.testing.assert_array_equal(x[..., 0], x[..., 2])


def test_no_resize_is_the_raw_pixels_scaled(mnist):
    x, y = first(mnist.pipeline("test", 8))
    raw_x, raw_y = mnist.numpy("test")
    np.testing.assert_allclose(x, raw_x[:8] / 255.0, atol=1e-7)
    assert y.tolist() == raw_y[:8].tolist()


def test_pad_keeps_aspect_ratio_with_black_bars(mnist):
    x, _ = first(mnist.pipeline("train", 2, image_size=(64, 32), resize_method="pad"))
    assert x.shape == (2, 64, 32, 1)
    assert x[:, :16].max() == 0.0 and x[:, 48:].max() == 0.0  # 28x28 -> 32x32 centred in 64 rows
    assert x[:, 16:48].max() > 0.9
    stretched, _ = first(mnist.pipeline("train", 2, image_size=(64, 32), resize_method="resize"))
    assert stretched[:, :16].max() > 0.0  # a stretched digit reaches into those rows


def test_cifar10_rgb_to_grayscale(cifar10):
    x, _ = first(cifar10.pipeline("test", 3, image_size=64, channels=1))
    assert x.shape == (3, 64, 64, 1) and 0.0 <= x.min() and x.max() <= 1.0


def test_seeded_shuffle_is_deterministic(mnist):
    def labels(seed):
        return np.concatenate([y.numpy() for _, y in mnist.pipeline("train", 50, shuffle=True, seed=seed, limit=200)])

    a, b, c = labels(7), labels(7), labels(8)
    assert a.tolist() == b.tolist()
    assert a.tolist() != c.tolist()
    assert sorted(a.tolist()) == sorted(mnist.numpy("train")[1][:200].tolist())  # limit: the first 200, reordered


def test_batches_limit_and_drop_remainder(mnist):
    sizes = [len(y) for _, y in mnist.pipeline("test", 32, limit=100)]
    assert sizes == [32, 32, 32, 4]
    assert [len(y) for _, y in mnist.pipeline("test", 32, limit=100, drop_remainder=True)] == [32, 32, 32]


def test_augment_runs_on_each_batch(mnist):
    x, _ = first(mnist.pipeline("train", 4, augment=lambda images: 1.0 - images))
    np.testing.assert_allclose(x, 1.0 - mnist.numpy("train")[0][:4] / 255.0, atol=1e-6)


def test_bad_options_are_explained(mnist):
    with pytest.raises(ValueError, match="resize_method must be one of"):
        mnist.pipeline("train", 8, resize_method="crop")
    with pytest.raises(ValueError, match="channels must be 1"):
        mnist.pipeline("train", 8, channels=4)
    with pytest.raises(ValueError, match="image_size must be"):
        mnist.pipeline("train", 8, image_size=(0, 5))
    with pytest.raises(ValueError, match="no split 'valid'"):
        mnist.pipeline("valid", 8)
