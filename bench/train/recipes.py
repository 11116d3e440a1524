"""Training recipes: every hyperparameter of a run in one readable block per model and dataset.

A recipe is a plain dict (airbench style: read it top to bottom, nothing hidden elsewhere),
checked into a frozen `Recipe`. Command-line flags override single fields
(`--epochs`, `--batch-size`, `--limit-train`); the recipe actually used is written to
`recipe.json` next to the checkpoints.

Accuracy claims live in `expect`; numbers measured on this machine are in `results/train/`.
Targets (`time_target_s`, `accuracy_target`) are stated for a machine of the development class
(2 cores, about 450 GFLOP/s on a 1024x1024 float32 matmul); `bench.train.machine` scales the time
target to the machine a run measures itself on.

Families:
- the CPU speed-record recipes `*_airbench94` (airbench94 as Keller Jordan trains it, section
  "airbench94" below);
- the earlier recipes (`mnist_cnn`, `cifar10_airbench_cpu`, ...), kept for comparison.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from bench.plumbing.precision import KERAS_POLICIES

# the schedules' names and options, repeated here so that reading recipes (and every `--help`) needs
# no TensorFlow; tests check they equal bench.train.schedules'
SCHEDULES = ("constant", "warmup_cosine", "one_cycle")
SCHEDULE_OPTIONS = {"constant": (), "warmup_cosine": ("final_fraction",),
                    "one_cycle": ("peak_at", "start_fraction", "end_fraction")}

# airbench_sgd: PyTorch's SGD rule with airbench's units and parameter groups (bench.train.optim):
# lr and weight_decay in airbench's units (per 1024 examples, summed loss), Nesterov momentum
OPTIMIZERS = ("sgd", "sgd_nesterov", "adam", "adamw", "airbench_sgd")
TTA_KEYS = ("level", "flip")
DATA_INIT_KEYS = ("images", "whiten_eps")


@dataclass(frozen=True)
class Recipe:
    name: str
    model: str
    dataset: str
    epochs: float                      # planned epochs; a fraction is a last partial epoch
    batch_size: int
    optimizer: str = "sgd_nesterov"   # sgd (the seed's: no momentum), sgd_nesterov, adam, adamw
    lr: float = 0.01                   # peak learning rate
    momentum: float = 0.9              # sgd_nesterov only
    schedule: str = "constant"         # constant, warmup_cosine, one_cycle
    warmup_epochs: float = 0.0         # warmup_cosine only
    weight_decay: float = 0.0          # decoupled (Keras optimizers), not on biases / BN
    label_smoothing: float = 0.0
    augment: dict[str, Any] = field(default_factory=dict)   # bench.train.augment keys
    image_size: tuple[int, int] | None = None  # None: the dataset's own size
    resize_method: str = "resize"      # resize or pad (the seed pads MNIST to 227 for AlexNet)
    channels: int | None = None        # convert grayscale <-> RGB; None: the dataset's own
    precision: str = "float32"         # float32, mixed_bfloat16 (CPUs with AVX512-BF16), mixed_float16
    model_options: dict[str, Any] = field(default_factory=dict)  # passed to the model builder
    aux_loss_weight: float = 0.3       # GoogLeNet's two auxiliary classifiers (aux_outputs=True)
    limit_train: int | None = None     # first N training images (None: all)
    train_classes: tuple[int, ...] | None = None  # keep only these labels, relabelled 0..k-1
    images_per_class: int | None = None           # with train_classes: first N of each
    val_fraction: float = 0.1          # held out of train for best-checkpoint selection
    # training time (bench.train.callbacks.TrainClock) this run may use: after its first steps the
    # run fits its whole schedule into the epochs that fit (bench.train.budget), never more than
    # `epochs`; fewer than `min_epochs` is refused before training
    time_budget_s: float | None = None
    min_epochs: float = 1.0
    finetune: dict[str, Any] | None = None  # transfer learning, see FINETUNE_KEYS
    schedule_options: dict[str, Any] = field(default_factory=dict)  # e.g. one_cycle's peak_at
    bn_bias_lr_scale: float = 1.0      # airbench_sgd: learning-rate multiplier of BatchNorm biases
    logits: bool = False               # the model outputs logits (loss from_logits); softmax added for export
    # model built from training images first: {"images": N, "whiten_eps": e}, the first N training
    # images give the `normalize` layer's mean/std and the whitening stem (zoo.airbench)
    data_init: dict[str, Any] | None = None
    whiten_bias_epochs: float | None = None  # airbench_sgd: the stem's bias trains this long, then frozen
    lookahead: bool = False            # airbench's EMA of all weights every 5 steps (callbacks.Lookahead)
    tta: dict[str, Any] | None = None  # {"level": 0|1|2, "flip": bool}: test-time augmentation in model.keras
    bn_momentum: float | None = None   # sets every BatchNorm's momentum (Keras convention) when not None
    time_target_s: float | None = None  # training time target on a dev-class machine (scaled elsewhere)
    accuracy_target: float | None = None  # test top-1 the recipe is meant to reach (mean over seeds)
    expect: str = ""                   # the accuracy this recipe is meant to reach, and where

    def __post_init__(self):
        problems = []
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer {self.optimizer!r} is not one of {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule {self.schedule!r} is not one of {SCHEDULES}")
        if not self.epochs > 0 or self.batch_size < 1:
            problems.append(f"epochs must be > 0 and batch_size >= 1 (got {self.epochs}, {self.batch_size})")
        if not self.min_epochs > 0:
            problems.append(f"min_epochs must be > 0, got {self.min_epochs}")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            problems.append(f"time_budget_s must be > 0 seconds, got {self.time_budget_s}")
        if self.schedule in SCHEDULE_OPTIONS:
            unknown = sorted(set(self.schedule_options) - set(SCHEDULE_OPTIONS[self.schedule]))
            if unknown:
                problems.append(f"schedule {self.schedule!r} takes no option(s) {unknown}; valid: "
                                f"{SCHEDULE_OPTIONS[self.schedule] or 'none'}")
        if self.optimizer == "airbench_sgd" and not 0 <= self.momentum < 1:
            problems.append(f"airbench_sgd needs momentum in [0, 1), got {self.momentum}")
        if self.whiten_bias_epochs is not None and self.optimizer != "airbench_sgd":
            problems.append("whiten_bias_epochs needs optimizer 'airbench_sgd' (it freezes through its switch)")
        if self.bn_bias_lr_scale != 1.0 and self.optimizer != "airbench_sgd":
            problems.append("bn_bias_lr_scale needs optimizer 'airbench_sgd' (Keras optimizers have no parameter groups)")
        if self.tta is not None:
            unknown = sorted(set(self.tta) - set(TTA_KEYS))
            if unknown or int(self.tta.get("level", 2)) not in (0, 1, 2):
                problems.append(f"tta must be {{'level': 0|1|2, 'flip': bool}}, got {self.tta}")
        if self.data_init is not None and set(self.data_init) - set(DATA_INIT_KEYS):
            problems.append(f"unknown data_init keys {sorted(set(self.data_init) - set(DATA_INIT_KEYS))}; "
                            f"valid: {DATA_INIT_KEYS}")
        if self.augment.get("alternating_flip") and (self.augment.get("horizontal_flip")
                                                     or self.augment.get("random_flip_left_right")):
            problems.append("alternating_flip replaces the random horizontal flip: drop horizontal_flip")
        if self.bn_momentum is not None and not 0 <= self.bn_momentum < 1:
            problems.append(f"bn_momentum must be in [0, 1), got {self.bn_momentum}")
        if self.schedule == "warmup_cosine" and not 0 <= self.warmup_epochs < self.epochs:
            problems.append(f"warmup_epochs ({self.warmup_epochs}) must be less than epochs ({self.epochs}); "
                            "raise --epochs or use a recipe with a shorter warm-up")
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.label_smoothing < 1:
            problems.append(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0 <= self.val_fraction < 0.5:
            problems.append(f"val_fraction must be in [0, 0.5), got {self.val_fraction}")
        if self.precision not in KERAS_POLICIES:
            problems.append(f"precision {self.precision!r} is not one of {KERAS_POLICIES}")
        if self.resize_method not in ("resize", "pad"):
            problems.append(f"resize_method must be 'resize' or 'pad', got {self.resize_method!r}")
        if self.finetune is not None:
            unknown = set(self.finetune) - set(FINETUNE_KEYS)
            if unknown:
                problems.append(f"unknown finetune keys {sorted(unknown)}; valid: {FINETUNE_KEYS}")
        if problems:
            raise ValueError(f"recipe {self.name!r}: " + "; ".join(problems))
        from bench.train.augment import build_augmentation  # Keras: only when a recipe is made
        build_augmentation(self.augment)  # raises on unknown or out-of-range options

    def replace(self, **changes: Any) -> "Recipe":
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> "Recipe":
        """The inverse of to_dict, e.g. for the `recipe` of a run's recipe.json."""
        fields = dict(fields)
        for key in ("image_size", "train_classes"):
            if fields.get(key) is not None:
                fields[key] = tuple(fields[key])
        options = dict(fields.get("model_options") or {})
        for key, value in options.items():  # JSON turned the recipe's tuples (widths) into lists
            if isinstance(value, list):
                options[key] = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        fields["model_options"] = options
        return cls(**fields)


# backbone: a zoo.transfer backbone; head: "gap" or "flatten" (the seed's);
# phase2_*: optional second phase unfreezing the top layers at a lower learning rate.
FINETUNE_KEYS = ("backbone", "head", "dropout", "weights", "phase2_epochs", "phase2_unfreeze",
                 "phase2_lr")

CIFAR_AUG = {"crop_padding": 4, "horizontal_flip": True}
CAT_DOG = (3, 5)  # CIFAR-10 labels: cat, dog

RECIPES: dict[str, dict[str, Any]] = {
    # ---- MNIST ---------------------------------------------------------------------------------
    "mnist_cnn": dict(
        # >= 99.4% test top-1 in < 10 min on 2 CPU cores (results/train/mnist_cnn_idle)
        model="small_cnn", dataset="mnist",
        epochs=8, batch_size=128,
        optimizer="adamw", lr=3e-3, schedule="one_cycle", weight_decay=5e-4,
        label_smoothing=0.1,
        augment={"rotation_range": 10, "width_shift_range": 0.1, "height_shift_range": 0.1,
                 "zoom_range": 0.1, "fill_mode": "constant"},
        expect=">= 99.4% test top-1 in < 10 min on a 2-core CPU",
    ),
    "mnist_tiny": dict(
        # the test recipe: a few hundred steps on 20k images, > 90%
        model="small_cnn", dataset="mnist", model_options={"widths": (16, 32, 32)},
        epochs=2, batch_size=64, limit_train=10_000, val_fraction=0.05,
        optimizer="adam", lr=3e-3, schedule="one_cycle",
        expect="> 90% test top-1 in about 300 steps",
    ),
    "mnist_alexnet": dict(
        # the seed: AlexNet, MNIST padded to 227x227, SGD lr 0.01 no momentum, batch 128,
        # 3 epochs, 10% validation split; here on the full training set (the seed used 256 images)
        model="alexnet", dataset="mnist", image_size=(227, 227), resize_method="pad",
        epochs=3, batch_size=128, optimizer="sgd", lr=0.01, momentum=0.0,
        expect="the seed's recipe on all 54k training images; accuracy and time reported",
    ),
    # ---- Fashion-MNIST ---------------------------------------------------------------------------
    "fashion_mnist_airbench": dict(
        # the CIFAR-10 CPU recipe's network and schedule on 28x28 grayscale: pad-2 crop + flip
        # (clothes are left-right symmetric, never upside down), 16 epochs in bfloat16
        model="airbench_net", dataset="fashion_mnist", precision="mixed_bfloat16",
        epochs=16, batch_size=512, val_fraction=0.04,
        optimizer="sgd_nesterov", lr=0.4, momentum=0.9, schedule="one_cycle",
        weight_decay=5e-4, label_smoothing=0.1,
        augment={"crop_padding": 2, "horizontal_flip": True},
        expect=">= 93% test top-1, about 20 min on a 2-core CPU",
    ),
    # ---- CIFAR-10 --------------------------------------------------------------------------------
    "cifar10_resnet18": dict(
        # the GPU recipe (standard ResNet-18 CIFAR recipe: SGD+Nesterov 0.1, wd 5e-4, cosine)
        model="resnet18", dataset="cifar10", model_options={"small_input": True},
        epochs=35, batch_size=128,
        optimizer="sgd_nesterov", lr=0.1, momentum=0.9, schedule="warmup_cosine", warmup_epochs=1,
        weight_decay=5e-4, label_smoothing=0.1, augment=CIFAR_AUG,
        expect=">= 93% test top-1 in ~35 epochs on a GPU (not run here: no GPU)",
    ),
    "cifar10_resnet18_cpu": dict(
        # for comparison with cifar10_airbench_cpu: as much ResNet-18 as 30 minutes of 2 cores
        # allow (~115 img/s here, so ~4 epochs); one-cycle over that short horizon
        model="resnet18", dataset="cifar10", model_options={"small_input": True},
        epochs=4, batch_size=256, time_budget_s=30 * 60,
        optimizer="sgd_nesterov", lr=0.2, momentum=0.9, schedule="one_cycle",
        weight_decay=5e-4, label_smoothing=0.1, augment=CIFAR_AUG,
        expect="the best ResNet-18 can do in 30 min on a 2-core CPU (not run here); "
               "cifar10_airbench_cpu is the CPU recipe",
    ),
    "cifar10_airbench_cpu": dict(
        # the CPU recipe: airbench94's network (zoo airbench_net) with Page's
        # ResNet-9 DAWNBench hyperparameters (SGD+Nesterov, peak lr 0.4 at batch 512, wd 5e-4,
        # label smoothing 0.2, one-cycle, pad-4 crop + flip); sized to finish inside 30 minutes
        # of 2 CPU cores, with the budget as a backstop
        # bfloat16 compute: 1.4x the float32 throughput on this AVX512-BF16 CPU (670 vs 475 img/s)
        model="airbench_net", dataset="cifar10", precision="mixed_bfloat16",
        epochs=20, batch_size=512, time_budget_s=30 * 60, val_fraction=0.04,
        optimizer="sgd_nesterov", lr=0.4, momentum=0.9, schedule="one_cycle",
        weight_decay=5e-4, label_smoothing=0.2, augment=CIFAR_AUG,
        expect="aiming at 85% test top-1 in 30 min on a 2-core CPU",
    ),
    # ---- CIFAR-100 -------------------------------------------------------------------------------
    "cifar100_resnet18": dict(
        model="resnet18", dataset="cifar100", model_options={"small_input": True},
        epochs=60, batch_size=128,
        optimizer="sgd_nesterov", lr=0.1, momentum=0.9, schedule="warmup_cosine", warmup_epochs=2,
        weight_decay=5e-4, label_smoothing=0.1, augment=CIFAR_AUG,
        expect="~76-78% test top-1 on a GPU (runs where cifar-100-python.tar.gz is present)",
    ),
    # ---- GoogLeNet: auxiliary losses weighted 0.3 each --------------------------------------------
    "cifar10_googlenet": dict(
        model="googlenet", dataset="cifar10", image_size=(96, 96),
        model_options={"aux_outputs": True}, aux_loss_weight=0.3,
        epochs=30, batch_size=128,
        optimizer="sgd_nesterov", lr=0.05, momentum=0.9, schedule="warmup_cosine", warmup_epochs=1,
        weight_decay=5e-4, augment=CIFAR_AUG,
        expect="a GPU recipe; main + 0.3 * aux1 + 0.3 * aux2 loss",
    ),
    # ---- Fine-tuning ------------------------------------------------------------------------------
    "catdog_efficientnet_lite0_finetune": dict(
        # ImageNet EfficientNet-Lite0, frozen, new head; 500 cat + 500 dog CIFAR-10 images at 224;
        # optional phase 2 unfreezes the top layers at a 10x lower learning rate
        model="efficientnet_lite0", dataset="cifar10", image_size=(224, 224),
        train_classes=CAT_DOG, images_per_class=500, val_fraction=0.1,
        epochs=3, batch_size=32, optimizer="adam", lr=1e-3,
        finetune={"backbone": "efficientnet_lite0", "head": "gap", "dropout": 0.2,
                  "phase2_epochs": 2, "phase2_unfreeze": 20, "phase2_lr": 1e-4},
        expect="clearly better than the same architecture from scratch for the same wall time",
    ),
    "catdog_efficientnet_lite0_scratch": dict(
        # the same architecture and images, random init, for the fine-tuning run's wall time
        model="efficientnet_lite0", dataset="cifar10", image_size=(224, 224),
        train_classes=CAT_DOG, images_per_class=500, val_fraction=0.1,
        epochs=50, batch_size=32, optimizer="adam", lr=1e-3, time_budget_s=600,
        min_epochs=0.05,  # the budget is the fine-tuning run's time: often less than one epoch here
        augment={"horizontal_flip": True},
        # Keras' 0.99 averages BatchNorm statistics over ~100 steps; a random network's weights move
        # so far in its few hundred steps that those averages are stale by the end, and in inference
        # mode every image gave the same prediction (50.0% val and test at every tuning, while train
        # top-1 reached 76%); re-estimating them with the final weights gave 57-60% on 1000 test images
        bn_momentum=0.9,
        finetune={"backbone": "efficientnet_lite0", "head": "gap", "dropout": 0.2, "weights": None},
        expect="baseline for the fine-tuning comparison (set time_budget_s to its wall time)",
    ),
    "hotdog_resnet50": dict(
        # the seed: ResNet50 (ImageNet), frozen, Flatten + Dense(2), adam, batch 32, 224x224,
        # 3 epochs of 10 steps; runs where the hotdog folders and Keras' ResNet50 weights exist
        model="resnet50", dataset="hotdog", image_size=(224, 224), channels=3,
        epochs=3, batch_size=32, optimizer="adam", lr=1e-3, val_fraction=0.0,
        finetune={"backbone": "resnet50", "head": "flatten", "weights": "imagenet"},
        expect="the seed's recipe; needs internet (or a local weights file) and hotdog.zip",
    ),
}


# ---- airbench94: the CPU speed-record recipes ----------------------------------------------------
# Keller Jordan's airbench94 (legacy/airbench94.py) ported to this toolkit: the zoo's `airbench94`
# network (input standardisation and a frozen 2x2 whitening stem from the first 5000 training
# images, dirac init, BatchNorm momentum 0.6 / epsilon 1e-12 / no scale, logits), airbench's SGD
# (PyTorch's rule: Nesterov 0.85, coupled weight decay 0.0153, BN biases at 64x the learning rate,
# lr 11.5 in airbench's per-1024-examples units), its piecewise-linear schedule (0.2 -> 1 over the
# first 23% of steps -> 0.07 at the last), label smoothing 0.2, lookahead (EMA of every weight incl.
# BN statistics every 5 steps), the whitening bias trained for the first 3 of 10 epochs, translate
# +-2 px (reflect pad + crop), alternating flip, all training images (no hold-out: the last weights
# are the result), and test-time augmentation (flip + 1-px translations) inside model.keras.
AIRBENCH94 = dict(
    model="airbench94", logits=True, optimizer="airbench_sgd", lr=11.5, momentum=0.85,
    weight_decay=0.0153, bn_bias_lr_scale=64.0, schedule="one_cycle",
    schedule_options={"peak_at": 0.23, "start_fraction": 0.2, "end_fraction": 0.07},
    label_smoothing=0.2, lookahead=True, data_init={"images": 5000, "whiten_eps": 5e-4},
    val_fraction=0.0, precision="mixed_bfloat16",  # float32 where the CPU has no bfloat16 (fit.train)
)

RECIPES.update({
    "mnist_airbench94": dict(
        AIRBENCH94, dataset="mnist", model_options={"widths": (16, 32, 64)},
        # the Keras airbench prototype's MNIST candidate: 1.5 epochs (351 steps)
        # gave 99.40% mean test top-1 (99.35-99.47) over 3 seeds, in about 88 s estimated on a quiet
        # 2-core machine: the target met only at its edge on both counts. Through this trainer 1.5
        # epochs gave 99.43% mean (99.40-99.46) over 3 seeds, 21 s each, and a second set 99.39%
        # (99.30-99.46; results/train/mnist_airbench94_1.5_epochs_rerun): at the edge of 99.4%. 2
        # epochs buy the margin; its training still takes about a third of the 90 s target.
        epochs=2, batch_size=256, whiten_bias_epochs=1, precision="float32",
        augment={"crop_padding": 2},            # digits: no flips, in training or at test time
        tta={"level": 2, "flip": False},
        time_target_s=90, accuracy_target=0.994,
        expect=">= 99.4% mean test top-1 in <= 90 s on a dev-class 2-core CPU (450 GFLOP/s)",
    ),
    "fashion_mnist_airbench94": dict(
        AIRBENCH94, dataset="fashion_mnist", model_options={"widths": (64, 256, 256)},
        epochs=6, batch_size=512, whiten_bias_epochs=2,
        augment={"crop_padding": 2, "alternating_flip": True},   # clothes are left-right symmetric
        tta={"level": 2, "flip": True},
        time_target_s=8 * 60, accuracy_target=0.94,
        # results/train/fashion_mnist_airbench94: 94.42% mean (94.31-94.54) over 3 seeds, 400-432 s, 361-366 GFLOP/s
        expect=">= 94.0% test top-1 in <= 8 min on a dev-class 2-core CPU (3 seeds: 94.42% mean, 400-432 s)",
    ),
    "cifar10_airbench94": dict(
        AIRBENCH94, dataset="cifar10", model_options={"widths": (64, 256, 256)},
        # airbench94 runs 9.9 epochs for 94.01% mean on a GPU (no margin); 12 for a margin
        epochs=12, batch_size=1024, whiten_bias_epochs=3.6,   # airbench: 3 of its 10 epochs
        augment={"crop_padding": 2, "alternating_flip": True},
        tta={"level": 2, "flip": True},
        time_target_s=30 * 60, accuracy_target=0.94,
        # one seed (results/train/cifar10_airbench94): 94.46% in 1030 s, bfloat16, 338 GFLOP/s
        expect=">= 94.0% mean test top-1 in <= 30 min on a dev-class 2-core CPU (one seed so far: 94.46%)",
    ),
})

def recipe_names() -> list[str]:
    return sorted(RECIPES)


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; valid recipes: {', '.join(recipe_names())}")
    return Recipe(name=name, **RECIPES[name])


def default_recipe(model: str, dataset: str) -> Recipe:
    """The recipe for this model and dataset, else a plain one (Adam, cosine, 10 epochs)."""
    for name, fields in RECIPES.items():
        if fields["model"] == model and fields["dataset"] == dataset and "tiny" not in name:
            return get_recipe(name)
    return Recipe(name=f"{dataset}_{model}_default", model=model, dataset=dataset, epochs=10,
                  batch_size=128, optimizer="adam", lr=1e-3, schedule="warmup_cosine",
                  warmup_epochs=1, model_options={"aux_outputs": True} if model == "googlenet" else {},
                  expect="no tuned recipe: Adam 1e-3 with warm-up + cosine")
