"""An export job, typed: what was asked (`ExportRequest`, checked before TensorFlow loads) and
what it works on (`ExportJob`: the export-ready model, its input, its dataset)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from export.formats import FORMATS, parse_formats


@dataclass(frozen=True)
class RecipeInfo:
    """What `bench train` wrote in recipe.json beside a checkpoint, as far as export uses it."""

    name: str | None = None
    dataset: str | None = None
    resize_method: str | None = None
    train_classes: tuple[int, ...] | None = None
    test_top1: float | None = None
    precision: str | None = None

    @classmethod
    def beside(cls, checkpoint: Path) -> "RecipeInfo":
        path = checkpoint.parent / "recipe.json"
        if not (checkpoint.is_file() and path.is_file()):
            return cls()
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError:
            return cls()
        recipe = record.get("recipe") if isinstance(record.get("recipe"), dict) else {}
        classes = recipe.get("train_classes")
        return cls(name=recipe.get("name"), dataset=recipe.get("dataset"), resize_method=recipe.get("resize_method"),
                   train_classes=tuple(int(c) for c in classes) if classes else None,
                   test_top1=record.get("test_top1"), precision=record.get("precision"))


@dataclass(frozen=True)
class ExportRequest:
    checkpoint: str
    out: Path
    formats: list[str]
    overwrite: bool = False
    opset: int = 17
    dataset: str | None = None
    recipe: RecipeInfo = field(default_factory=RecipeInfo)
    resize_method: str = "resize"
    parity_images: int | None = None  # None: the whole test split
    random_images: int = 32
    calibration_images: int = 512
    batch_size: int = 64
    locate: bool = False
    aux_outputs: bool = False
    input_shape: tuple[int, int, int] | None = None
    classes: int | None = None
    name: str | None = None
    custom_objects: str | None = None

    @classmethod
    def from_args(cls, args: Any) -> "ExportRequest":
        """Checks everything that can be checked before loading TensorFlow; raises ValueError."""
        formats = parse_formats(args.formats)
        if args.parity_images != "all" and not (args.parity_images.isdigit() and int(args.parity_images) > 0):
            raise ValueError(f"--parity-images must be a positive number or 'all', got {args.parity_images!r}")
        for flag, value in (("--random-images", args.random_images), ("--batch-size", args.batch_size),
                            ("--calibration-images", args.calibration_images)):
            if value < 1:
                raise ValueError(f"{flag} must be at least 1, got {value}")
        shape = None
        if args.input_shape:
            try:
                shape = tuple(int(v) for v in args.input_shape.split(","))
                assert len(shape) == 3 and min(shape) > 0
            except (ValueError, AssertionError):
                raise ValueError(f"--input-shape must be H,W,C with positive integers, e.g. 32,32,3; "
                                 f"got {args.input_shape!r}") from None
        recipe = RecipeInfo.beside(Path(args.checkpoint))
        dataset = args.dataset or recipe.dataset
        if any(_calibrated(f) for f in formats) and not dataset:
            raise ValueError("int8 formats are calibrated on real training images: pass --dataset NAME")
        return cls(checkpoint=args.checkpoint, out=Path(args.out), formats=formats, overwrite=args.overwrite,
                   opset=args.opset, dataset=dataset, recipe=recipe,
                   resize_method=args.resize_method or recipe.resize_method or "resize",
                   parity_images=None if args.parity_images == "all" else int(args.parity_images),
                   random_images=args.random_images, calibration_images=args.calibration_images,
                   batch_size=args.batch_size, locate=args.locate, aux_outputs=args.aux_outputs,
                   input_shape=shape, classes=args.classes, name=args.name,
                   custom_objects=getattr(args, "custom_objects", None))


def _calibrated(fmt: str) -> bool:
    return FORMATS[fmt].calibrated


@dataclass
class ExportJob:
    request: ExportRequest
    model: Any                      # keras.Model, float32, inference outputs
    name: str                       # the artifact's model name
    architecture: str
    was_mixed_precision: bool
    shape: tuple[int, int, int]     # H, W, C
    kind: str                       # probabilities | logits
    num_classes: int
    data: "ExportData | None"
    # BatchNorms whose input channels export.equalize rescaled before an int8 conversion
    equalized: list[str] | None = None

    @property
    def output_names(self) -> list[str]:
        from export.convert import output_names

        return output_names(self.model, self.kind)

    @classmethod
    def of_model(cls, request: ExportRequest, model, data: "ExportData | None" = None) -> "ExportJob":
        """A job for a float32 inference model already in memory (the benchmark's engines and the
        isolated conversion process), named after the model."""
        from export.convert import input_shape, output_kind

        return cls(request=request, model=model, name=model.name, architecture=model.name,
                   was_mixed_precision=False, shape=input_shape(model), kind=output_kind(model),
                   num_classes=int(model.outputs[0].shape[-1]), data=data)


def prepare(request: ExportRequest) -> ExportJob:
    """Loads the model and dataset and converts nothing yet; raises ValueError on bad input."""
    from export import checkpoint, convert
    from zoo.inference import as_float32, inference_outputs, is_mixed_precision

    if any(FORMATS[f].runtime == "onnxruntime" or FORMATS[f].made_from == "onnx" for f in request.formats):
        convert.check_opset(request.opset)
    path = Path(request.checkpoint)
    options = {"aux_outputs": True} if request.aux_outputs and not path.exists() else {}
    model = checkpoint.load(request.checkpoint, request.input_shape, request.classes,
                            custom_objects=request.custom_objects, **options)
    checkpoint.check_finite(model, request.checkpoint)
    mixed = is_mixed_precision(model)
    model = inference_outputs(as_float32(model), request.aux_outputs)
    shape = convert.input_shape(model)
    num_classes = int(model.outputs[0].shape[-1])
    data = (ExportData(request.dataset, shape, num_classes, request.resize_method, request.recipe.train_classes)
            if request.dataset else None)
    return ExportJob(request=request, model=model, name=request.name or default_name(path, request.recipe),
                     architecture=model.name, was_mixed_precision=mixed, shape=shape,
                     kind=convert.output_kind(model), num_classes=num_classes, data=data)


def default_name(checkpoint: Path, recipe: RecipeInfo) -> str:
    """The artifact's model name without --name: a training run's name (its directory, as in
    runs/NAME/model.keras, where `make artifacts` names the artifact too) when `bench train` wrote
    the checkpoint; else the file's name without suffix; a zoo name as given."""
    if not checkpoint.is_file():
        return str(checkpoint)
    run = checkpoint.resolve().parent.name
    if recipe.name is None or not run:  # no recipe.json beside it: not a training run
        return checkpoint.stem
    return run if checkpoint.stem == "model" else f"{run}_{checkpoint.stem}"  # best.keras, last.keras


class ExportData:
    """A model's dataset through bench.data, at the model's input size and channels, with the class
    subset its training kept (relabelled 0..k-1 in that order)."""

    def __init__(self, dataset: str, shape: tuple[int, int, int], num_classes: int, resize_method: str = "resize",
                 train_classes: tuple[int, ...] | None = None, foreign_labels: bool = False):
        """`foreign_labels`: the model's classes are not the dataset's (an ImageNet model given
        CIFAR-10 photos for calibration and agreement checks): its images are used, its labels
        mean nothing (`labels_match` is False) instead of the class counts being refused."""
        from bench.data import load_dataset
        from bench.data.errors import DataError

        try:
            self.ds = load_dataset(dataset)
        except DataError as exc:  # missing or corrupt files: bench.data says where to put them
            raise ValueError(f"dataset {dataset!r} is not available: {exc}") from None
        self.source = dataset  # the name or folder it was loaded by
        self.shape = shape
        self.resize_method = resize_method
        # training keeps only these labels and renumbers them 0..k-1 in this order
        self.subset = list(train_classes) if train_classes else None
        names = list(self.ds.class_names)
        self.class_names = [names[c] for c in self.subset] if self.subset else names
        self.labels_match = len(self.class_names) == num_classes
        if not self.labels_match and foreign_labels:
            self.class_names = [str(i) for i in range(num_classes)]
        elif not self.labels_match:
            raise ValueError(
                f"the model has {num_classes} outputs but dataset {self.ds.name!r} has "
                f"{len(self.class_names)} classes; pass the --dataset the model was trained on")

    def batches(self, split: str, batch_size: int, limit: int | None,
                shuffle: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(images, labels) numpy batches; a class subset is filtered and relabelled 0..k-1."""
        h, w, c = self.shape
        pipe = self.ds.pipeline(split, batch_size, image_size=(h, w), resize_method=self.resize_method,
                                channels=c, shuffle=shuffle, seed=0 if shuffle else None,
                                limit=None if self.subset else limit)
        taken = 0
        remap = {c: i for i, c in enumerate(self.subset or [])}
        for x, y in pipe.as_numpy_iterator():
            if self.subset:
                keep = np.isin(y, self.subset)
                x, y = x[keep], np.array([remap[int(c)] for c in y[keep]], dtype="int64")
            if limit is not None:
                x, y = x[: limit - taken], y[: limit - taken]
            if len(x):
                yield x, y
                taken += len(x)
            if limit is not None and taken >= limit:
                return
