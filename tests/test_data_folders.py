"""Image folders (train/<class>/*.jpg, test/<class>/*.jpg) written from real MNIST and
CIFAR-10 images, read through keras' directory loader; corrupt files; the hotdog archive."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.data import load_dataset
from bench.data.errors import ChecksumMismatch, CorruptFile, DataError, DatasetUnavailable
from bench.data.folders import FolderDataset, extract_zip


def write_folder(root: Path, ds, classes: list[int], per_class: int, fmt: str = "JPEG") -> Path:
    """root/{train,test}/<class name>/NNN.jpg from the first real images of each class."""
    suffix = ".jpg" if fmt == "JPEG" else ".png"
    for split in ("train", "test"):
        x, y = ds.numpy(split)
        for c in classes:
            folder = root / split / ds.class_names[c]
            folder.mkdir(parents=True)
            for i, idx in enumerate(np.flatnonzero(y == c)[:per_class]):
                img = x[idx].squeeze(-1) if x.shape[-1] == 1 else x[idx]
                Image.fromarray(img).save(folder / f"{i:03d}{suffix}", fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return root


@pytest.fixture
def cats_dogs(tmp_path, cifar10):
    return write_folder(tmp_path / "cats_dogs", cifar10, [3, 5], per_class=5)


def test_jpeg_folder_from_cifar(cats_dogs, cifar10):
    ds = load_dataset(cats_dogs)
    assert ds.class_names == ["cat", "dog"] and ds.num_classes == 2
    assert ds.split_sizes == {"train": 10, "test": 10} and ds.image_shape == (32, 32, 3)
    x, y = ds.numpy("train")
    assert x.shape == (10, 32, 32, 3) and y.tolist() == [0] * 5 + [1] * 5
    real = cifar10.numpy("train")[0][np.flatnonzero(cifar10.numpy("train")[1] == 3)[:5]]
    assert np.abs(x[:5].astype(int) - real).mean() < 4  # JPEG at quality 95: close, not exact
    images, labels = next(iter(ds.pipeline("train", 10)))
    np.testing.assert_allclose(images.numpy(), x / 255.0, atol=1e-6)  # loader order == numpy order
    assert labels.numpy().tolist() == y.tolist()


def test_folder_pipeline_resize_pad_and_channels(tmp_path, mnist):
    ds = load_dataset(write_folder(tmp_path / "digits", mnist, [0, 1, 7], per_class=3, fmt="PNG"))
    assert ds.image_shape == (28, 28, 1) and ds.class_names == ["0", "1", "7"]
    np.testing.assert_array_equal(ds.numpy("test")[0][0], mnist.numpy("test")[0][np.flatnonzero(mnist.numpy("test")[1] == 0)[0]])
    for method in ("resize", "pad"):
        images, labels = next(iter(ds.pipeline("train", 9, image_size=227, resize_method=method, channels=3)))
        assert images.shape == (9, 227, 227, 3) and images.dtype.name == "float32"
        assert 0.0 <= float(images.numpy().min()) and float(images.numpy().max()) <= 1.0
        assert labels.dtype.name == "int64" and sorted(labels.numpy().tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_folder_seeded_shuffle_and_limit(cats_dogs):
    ds = load_dataset(cats_dogs)

    def order(seed):
        return np.concatenate([y.numpy() for _, y in ds.pipeline("train", 4, shuffle=True, seed=seed, limit=6)]).tolist()

    assert order(3) == order(3) and sorted(order(3)) == [0, 0, 0, 0, 0, 1]


def test_unreadable_jpeg_is_named(cats_dogs):
    bad = cats_dogs / "train" / "dog" / "002.jpg"
    bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) // 2])
    with pytest.raises(CorruptFile, match="unreadable image") as err:
        FolderDataset.open(cats_dogs)
    assert str(bad) in str(err.value)


def test_not_an_image_is_named(cats_dogs):
    bad = cats_dogs / "test" / "cat" / "zz.png"
    bad.write_text("this is not a PNG")
    with pytest.raises(CorruptFile, match="unreadable image") as err:
        FolderDataset.open(cats_dogs)
    assert str(bad) in str(err.value)


def test_mismatched_class_folders_and_missing_train(cats_dogs, tmp_path):
    (cats_dogs / "test" / "bird").mkdir()
    with pytest.raises(DataError, match=r"class folders \['bird', 'cat', 'dog'\] differ from train's"):
        FolderDataset.open(cats_dogs)
    (tmp_path / "empty" / "test").mkdir(parents=True)
    with pytest.raises(DataError, match="no 'train' folder"):
        load_dataset(tmp_path / "empty")


def test_mixed_sizes_need_an_image_size(cats_dogs):
    Image.new("RGB", (40, 20), (200, 10, 10)).save(cats_dogs / "train" / "cat" / "wide.jpg")
    ds = FolderDataset.open(cats_dogs)
    assert ds.image_shape == (None, None, 3)
    with pytest.raises(DataError, match="images differ in size"):
        ds.numpy("train")
    images, _ = next(iter(ds.pipeline("train", 11, image_size=(24, 24), resize_method="pad")))
    assert images.shape == (11, 24, 24, 3)


def hotdog_zip(path: Path, source: Path) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for f in sorted(source.rglob("*.jpg")):
            z.write(f, "hotdog/" + f.relative_to(source).as_posix())
    return path


def test_hotdog_zip_is_checked_then_extracted(isolated_cache, cats_dogs, tmp_path):
    folder = isolated_cache / "datasets" / "hotdog"
    folder.mkdir(parents=True)
    hotdog_zip(folder / "hotdog.zip", cats_dogs)  # right layout, but not d2l's published archive
    with pytest.raises(ChecksumMismatch, match="sha1 is .* expected fba480ff") as err:
        load_dataset("hotdog")
    assert str(folder / "hotdog.zip") in str(err.value) and not (folder / "extracted").exists()

    extracted = extract_zip(hotdog_zip(tmp_path / "h.zip", cats_dogs), tmp_path / "out")
    ds = FolderDataset.open(extracted / "hotdog", "hotdog")
    assert ds.class_names == ["cat", "dog"] and ds.split_sizes == {"train": 10, "test": 10}


def test_zip_escaping_its_folder_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as z:
        z.writestr("../outside.txt", "x")
    with pytest.raises(CorruptFile, match="points outside"):
        extract_zip(tmp_path / "evil.zip", tmp_path / "out")
    assert not (tmp_path / "outside.txt").exists()


def test_hotdog_absent_says_what_to_provide(isolated_cache):
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("hotdog")
    assert "hotdog.zip" in str(err.value) and "fba480ffa8aa7e0febbb511d181409f899b9baa5" in str(err.value)


# ---------------------------------------------------------------- what a new user's folder holds


def _digit(mnist, i: int = 0) -> np.ndarray:
    return mnist.numpy("train")[0][i, :, :, 0]


def test_a_dataset_needs_two_classes_with_an_image_in_every_split(tmp_path, mnist):
    folder = write_folder(tmp_path / "one", mnist, [0], per_class=3, fmt="PNG")
    with pytest.raises(DataError) as err:
        FolderDataset.open(folder)
    assert str(err.value) == (f"{folder / 'train'}: a classifier needs at least 2 class folders, found only '0'; "
                              "put each class's images in train/<class>/ and test/<class>/")
    (folder / "train" / "1").mkdir()  # a second class, but an empty one: it would be a silent extra class
    (folder / "test" / "1").mkdir()
    with pytest.raises(DataError, match=r"no images \(.*\); every class needs at least one image in every split") as err:
        FolderDataset.open(folder)
    assert str(err.value).startswith(f"{folder / 'train' / '1'}: ") and "\n" not in str(err.value)
    Image.fromarray(_digit(mnist)).save(folder / "train" / "1" / "000.png")  # the test split still lacks it
    with pytest.raises(DataError, match="no images") as err:
        FolderDataset.open(folder)
    assert str(err.value).startswith(f"{folder / 'test' / '1'}: ")
    Image.fromarray(_digit(mnist, 1)).save(folder / "test" / "1" / "000.png")
    assert FolderDataset.open(folder).split_sizes == {"train": 4, "test": 4}


def test_files_that_are_not_images_are_skipped_with_one_warning(tmp_path, mnist, capsys):
    folder = write_folder(tmp_path / "digits", mnist, [0, 1], per_class=3, fmt="PNG")
    (folder / "train" / "0" / "notes.txt").write_text("where I got these")
    Image.fromarray(_digit(mnist)).save(folder / "test" / "1" / "scan.tiff")  # an image TensorFlow cannot read
    (folder / "train" / "1" / ".DS_Store").write_bytes(b"\0")  # hidden: not worth a word
    ds = FolderDataset.open(folder)
    assert ds.split_sizes == {"train": 6, "test": 6}
    err = capsys.readouterr().err
    assert err == (f"warning: skipped 2 files under {folder} that are not bmp/gif/jpeg/jpg/png "
                   f"(e.g. {folder / 'train' / '0' / 'notes.txt'}); convert any images among them to PNG or "
                   "JPEG to use them\n")


def test_bmp_gif_and_cmyk_jpeg_load_as_grayscale(tmp_path, mnist):
    """TensorFlow decodes BMP, GIF and CMYK JPEG to 3 channels only (channels=1 raised an
    InvalidArgumentError mid-iteration that named no file); they are now read as RGB and converted."""
    folder = write_folder(tmp_path / "digits", mnist, [0, 1], per_class=2, fmt="PNG")
    digit = _digit(mnist, 5)
    Image.fromarray(digit).convert("CMYK").save(folder / "train" / "1" / "a_cmyk.jpg", quality=95)
    Image.fromarray(digit).save(folder / "train" / "1" / "b_gray.bmp")
    Image.fromarray(digit).convert("RGB").save(folder / "train" / "1" / "c_rgb.gif")
    ds = FolderDataset.open(folder)
    images, labels = next(iter(ds.pipeline("train", 7, channels=1)))
    assert images.shape == (7, 28, 28, 1) and labels.numpy().tolist() == [0, 0, 1, 1, 1, 1, 1]
    got = images.numpy()[4:7, :, :, 0] * 255  # sorted: class 0 (2), then 1 000.png, 001.png, cmyk, bmp, gif
    assert np.abs(got[0] - digit).mean() < 3  # JPEG: close, not exact
    np.testing.assert_allclose(got[1], digit, atol=0.6)  # lossless, through rgb_to_grayscale
    np.testing.assert_allclose(got[2], digit, atol=0.6)


def test_a_bmp_tensorflow_would_misread_is_refused_by_name(tmp_path, mnist):
    folder = write_folder(tmp_path / "digits", mnist, [0, 1], per_class=2, fmt="PNG")
    bad = folder / "test" / "0" / "palette.bmp"
    Image.fromarray(np.stack([_digit(mnist)] * 3, -1)).convert("P").save(bad)
    with pytest.raises(CorruptFile) as err:
        FolderDataset.open(folder)
    assert str(err.value).startswith(f"{bad}: a BMP with a colour palette") and "re-save it as PNG" in str(err.value)


def test_images_much_smaller_than_the_input_are_warned_about_once(tmp_path, mnist, capsys):
    folder = write_folder(tmp_path / "digits", mnist, [0, 1], per_class=3, fmt="PNG")
    tiny = folder / "train" / "1" / "tiny.png"
    Image.new("L", (1, 1), 200).save(tiny)
    ds = FolderDataset.open(folder)
    for split in ("train", "test", "train"):
        list(ds.pipeline(split, 8, image_size=28))
    assert capsys.readouterr().err == (
        f"warning: 1 of 13 images under {folder} is more than 4x smaller than the 28x28 input and will be "
        f"upscaled (blurred), e.g. {tiny} (1x1); remove them or use a smaller image size\n")
    list(ds.pipeline("train", 8, image_size=(7, 7)))  # 28 -> 7 is no upscaling; 1 -> 7 is
    assert "1 of 13 images" in capsys.readouterr().err
