"""EfficientNet-Lite0: the torch-free .pth reader, the architecture, the ImageNet port and its
agreement with the PyTorch reference on real photos."""

from __future__ import annotations

import io
import pickle
import shutil
import zipfile

import numpy as np
import pytest

import zoo
from zoo import efficientnet_lite as el
from bench.plumbing import registry
from bench.plumbing.files import sha256_file
from zoo import imagenet_classes, sample_photos
from zoo.torch_weights import LEGACY_MAGIC, TorchFileError, load_state_dict

REFERENCE_TENSORS = 296
REFERENCE_PARAMETERS = 4_694_073  # incl. one num_batches_tracked counter per BatchNorm
CAT_CLASSES = {"tiger cat", "Egyptian cat", "tabby"}


@pytest.fixture(scope="module")
def state() -> dict[str, np.ndarray]:
    return load_state_dict(el.pth_path())


@pytest.fixture(scope="module")
def imagenet_model():
    return zoo.build("efficientnet_lite0", weights="imagenet", classifier_activation=None)


def _photo_batch(source: str) -> tuple[list[str], np.ndarray]:
    names = sample_photos.names(source)
    try:
        images = [sample_photos.imagenet_eval_crop(sample_photos.load(n)) for n in names]
    except sample_photos.PhotoUnavailable as e:
        if source == "scikit-image":
            raise  # the PyPI photos must always be there
        pytest.skip(f"Debian photos unavailable here (run apt-get update?): {e}")
    return names, np.stack(images)


@pytest.fixture(scope="module")
def photos() -> tuple[list[str], np.ndarray]:
    return _photo_batch("scikit-image")


# ---- reading .pth without torch ----------------------------------------------------------------


def test_reads_the_pypi_state_dict_without_torch(state):
    assert sha256_file(el.pth_path()) == el.PTH_SHA256
    assert len(state) == REFERENCE_TENSORS
    assert sum(v.size for v in state.values()) == REFERENCE_PARAMETERS
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_fc.weight"].dtype == np.float32
    assert state["_bn0.num_batches_tracked"].dtype == np.int64
    # Real trained statistics, not zeros or ones.
    var = state["_bn0.running_var"]
    assert np.all(var >= 0) and not np.allclose(var, 1.0)


def _legacy_stream(obj: object) -> bytes:
    out = io.BytesIO()
    for part in (LEGACY_MAGIC, 1001, {"little_endian": True}):
        pickle.dump(part, out, protocol=2)
    pickle.dump(obj, out, protocol=2)
    return out.getvalue()


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_refuses_pickles_that_would_run_code(tmp_path):
    legacy = tmp_path / "evil.pth"
    legacy.write_bytes(_legacy_stream({"w": _RunsCode()}))
    with pytest.raises(TorchFileError, match="refusing to load"):
        load_state_dict(legacy)
    zipped = tmp_path / "evil_zip.pth"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"w": _RunsCode()}, protocol=2))
    with pytest.raises(TorchFileError, match="refusing to load"):
        load_state_dict(zipped)


def test_rejects_files_that_are_not_pytorch(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"definitely not a pickle")
    with pytest.raises(TorchFileError, match="not a PyTorch file"):
        load_state_dict(junk)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_state_dict(tmp_path / "missing.pth")


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_reader_matches_torch_for_both_file_layouts(tmp_path, zip_format):
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=g)
    saved = {
        "conv.weight": torch.randn(8, 3, 3, 3, generator=g),
        "transposed": base.t(),  # non-contiguous: strides must be honoured
        "slice": base[1:3, 2:5],  # shares base's storage, non-zero offset
        "half": torch.randn(5, generator=g).half(),
        "steps": torch.tensor(7, dtype=torch.int64),  # 0-d
    }
    path = tmp_path / "sd.pth"
    torch.save(saved, path, _use_new_zipfile_serialization=zip_format)
    loaded = load_state_dict(path)
    assert list(loaded) == list(saved)
    for key, tensor in saved.items():
        np.testing.assert_array_equal(loaded[key], tensor.numpy(), err_msg=key)
        assert loaded[key].dtype == tensor.numpy().dtype


# ---- architecture ------------------------------------------------------------------------------


def test_parameter_count_equals_the_reference(state):
    model = zoo.build("efficientnet_lite0")
    counters = sum(1 for k in state if k.endswith("num_batches_tracked"))
    assert model.count_params() == REFERENCE_PARAMETERS - counters == 4_694_024
    # Lite: 16 MBConv blocks, ReLU6 everywhere, no squeeze-excite.
    assert sum(1 for layer in model.layers if layer.name.endswith("project_conv")) == 16
    assert not any("se_" in layer.name for layer in model.layers)
    assert model.output_shape == (None, 1000)


def test_stride2_padding_is_explicit_and_matches_reference_same_padding():
    model = zoo.build("efficientnet_lite0", input_shape=(225, 224, 3), num_classes=10)
    # Reference static padding: total = (ceil(n/s)-1)*s + k - n, floor before, rest after.
    assert model.get_layer("stem_pad").padding == ((1, 1), (0, 1))
    assert model.get_layer("block3a_dwconv_pad").padding == ((2, 2), (1, 2))  # 5x5 on 57x56


def test_builds_small_inputs_and_rejects_too_small():
    model = zoo.build("efficientnet_lite0", input_shape=(32, 32, 3), num_classes=10)
    probs = np.asarray(model(np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)))
    assert probs.shape == (2, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="smallest input is 32x32"):
        zoo.build("efficientnet_lite0", input_shape=(28, 28, 1), num_classes=10)
    with pytest.raises(ValueError, match="pooling"):
        zoo.build("efficientnet_lite0", input_shape=(32, 32, 3), include_top=False, pooling="mean")


def test_preprocessing_is_the_reference_scaling():
    layer = zoo.build("efficientnet_lite0", input_shape=(32, 32, 3)).get_layer("preprocess")
    x = np.array([0.0, 127 / 255, 1.0], dtype=np.float32)
    np.testing.assert_allclose(np.asarray(layer(x)), [-127 / 128, 0.0, 1.0], atol=1e-6)


# ---- the ImageNet port ---------------------------------------------------------------------------


def test_conversion_writes_keras_weights_atomically(tmp_path, state):
    dest = tmp_path / "lite0.weights.h5"
    seconds = el.convert_pth(el.pth_path(), dest)
    assert dest.is_file() and seconds > 0
    assert [p.name for p in tmp_path.iterdir()] == ["lite0.weights.h5"]  # no partial file left
    model = el.build_efficientnet_lite0(name="efficientnet_lite0_imagenet")
    model.load_weights(dest)
    np.testing.assert_array_equal(model.get_layer("stem_conv").get_weights()[0],
                                  state["_conv_stem.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(model.get_layer("block2a_dwconv").get_weights()[0][..., 0],
                                  state["_blocks.1._depthwise_conv.weight"][:, 0].transpose(1, 2, 0))
    np.testing.assert_array_equal(model.get_layer("predictions").get_weights()[0], state["_fc.weight"].T)


def test_conversion_refuses_a_corrupt_pth(tmp_path):
    corrupt = tmp_path / el.PTH_FILE
    shutil.copyfile(el.pth_path(), corrupt)
    with open(corrupt, "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(registry.FetchError, match="sha256"):
        el.convert_pth(corrupt, tmp_path / "out.weights.h5")
    assert not (tmp_path / "out.weights.h5").exists()


def test_classifies_real_photos(imagenet_model, photos):
    names, x = photos
    top1 = np.asarray(imagenet_model.predict(x, verbose=0)).argmax(axis=1)
    predicted = dict(zip(names, (imagenet_classes.short_name(i) for i in top1)))
    assert predicted["chelsea"] in CAT_CLASSES
    assert predicted["coffee"] == "espresso"


@pytest.mark.parametrize("source", ["scikit-image", "darknet"])
def test_matches_the_pytorch_reference_on_real_photos(imagenet_model, source):
    torch = pytest.importorskip("torch")
    reference = pytest.importorskip("efficientnet_lite_pytorch")
    names, x = _photo_batch(source)
    net = reference.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(el.pth_path()))
    net.eval()
    with torch.no_grad():  # the reference takes (x - 127) / 128 on 0..255, NCHW
        logits_ref = net(torch.from_numpy((x * 255 - 127) / 128).permute(0, 3, 1, 2).float()).numpy()
    logits = np.asarray(imagenet_model.predict(x, verbose=0))
    probs, probs_ref = _softmax(logits), _softmax(logits_ref)
    for i, name in enumerate(names):
        assert probs[i].argmax() == probs_ref[i].argmax(), name
        assert np.abs(probs[i] - probs_ref[i]).max() < 1e-4, name


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_new_head_keeps_the_pretrained_backbone(imagenet_model):
    model = zoo.build("efficientnet_lite0", input_shape=(64, 64, 1), num_classes=5, weights="imagenet")
    assert model.output_shape == (None, 5)
    for name in ("stem_conv", "block4b_dwconv", "top_bn"):
        for got, want in zip(model.get_layer(name).get_weights(), imagenet_model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)
    assert model.get_layer("gray_to_rgb").output.shape[-1] == 3


# a file of another architecture on purpose: Keras warns about every container it cannot match
@pytest.mark.filterwarnings("ignore:Skipping nested container at:UserWarning")
def test_weights_file_that_does_not_fit_names_the_file(tmp_path):
    other = zoo.build("efficientnet_lite0", input_shape=(32, 32, 3), include_top=False)
    path = tmp_path / "headless.weights.h5"
    other.save_weights(path)
    with pytest.raises(ValueError, match="headless.weights.h5"):
        zoo.build("efficientnet_lite0", input_shape=(32, 32, 3), num_classes=10, weights=str(path))
    with pytest.raises(FileNotFoundError, match="nowhere.weights.h5"):
        zoo.build("efficientnet_lite0", weights=str(tmp_path / "nowhere.weights.h5"))


# ---- class names and photos ----------------------------------------------------------------------


def test_imagenet_class_names_in_standard_order():
    names = imagenet_classes.class_names()
    assert len(names) == 1000
    assert (names[21], imagenet_classes.short_name(22), names[285], names[967]) == (
        "kite", "bald eagle", "Egyptian cat", "espresso")
    assert names[477] == "carpenter's kit, tool kit"  # escaped quote in the JS source


def test_class_name_parser_joins_pieces_and_checks_completeness():
    js = "exports.X = {\n" + "".join(f"    {i}: 'c{i}',\n" for i in range(999))
    js += "    999: 'long ' +\n        'name\\'s end'\n};\n"
    assert imagenet_classes.parse_js(js)[999] == "long name's end"
    with pytest.raises(ValueError, match="0..999"):
        imagenet_classes.parse_js(js.replace("    5: 'c5',\n", ""))


def test_sample_photos_are_real_and_checked():
    img = sample_photos.load("chelsea")
    assert img.dtype == np.uint8 and img.shape == (300, 451, 3)
    crop = sample_photos.imagenet_eval_crop(img)
    assert crop.shape == (224, 224, 3) and crop.dtype == np.float32
    assert 0.0 <= crop.min() < 0.2 and 0.8 < crop.max() <= 1.0
    assert sha256_file(sample_photos.path("dog")) == sample_photos.PHOTOS["dog"].sha256
    with pytest.raises(KeyError, match="chelsea"):
        sample_photos.path("lena")
