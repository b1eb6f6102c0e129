"""Freeze and unfreeze layer groups; frozen BatchNorm statistics; optimizer parameter groups.

"Frozen" means three things here, all enforced together:
  1. the group's parameters get ``requires_grad=False``;
  2. they stay out of the optimizer (``trainable_parameters`` / the ``*_param_groups`` helpers);
  3. BatchNorm layers inside the group keep their running statistics: they become
     ``FrozenStatsBatchNorm2d`` (``print(model)`` shows it), which stays in eval mode even
     after ``model.train()`` (pass ``freeze_bn_stats=False`` to let the statistics adapt).

Example:
    >>> from course_utils.models import build_model
    >>> model = build_model("resnet18", num_classes=10, pretrained=False)
    >>> apply_strategy(model, "last_only")
    >>> sum(p.numel() for p in trainable_parameters(model))
    5130
    >>> model.bn1
    FrozenStatsBatchNorm2d(64, eps=1e-05, momentum=0.1, affine=True, ...track_running_stats=True, running stats frozen)
"""

from __future__ import annotations

from torch import nn

from .models.architectures import LayerGroups, architecture_of
from .models.multitask import is_multitask

STRATEGIES = ("none", "early", "middle", "last_only")


# ----------------------------------------------------------------------------- frozen BatchNorm statistics


class _FrozenStats:
    """A BatchNorm that normalizes with its running statistics and never updates them.

    Why a class of its own: ``requires_grad=False`` does not touch BatchNorm's running mean
    and variance, which every forward pass in training mode moves towards the batch's
    statistics. A layer of this class ignores ``model.train()`` and stays in eval mode.
    It is the same module with the same parameters and buffers (only its class changes),
    so optimizers, ``state_dict`` and checkpoints see no difference; its affine weight and
    bias still train if their ``requires_grad`` is on.
    """

    def train(self, mode: bool = True):
        return super().train(False)

    def extra_repr(self) -> str:
        return super().extra_repr() + ", running stats frozen"


class FrozenStatsBatchNorm1d(_FrozenStats, nn.BatchNorm1d):
    __doc__ = _FrozenStats.__doc__


class FrozenStatsBatchNorm2d(_FrozenStats, nn.BatchNorm2d):
    __doc__ = _FrozenStats.__doc__


class FrozenStatsBatchNorm3d(_FrozenStats, nn.BatchNorm3d):
    __doc__ = _FrozenStats.__doc__


class FrozenStatsSyncBatchNorm(_FrozenStats, nn.SyncBatchNorm):
    __doc__ = _FrozenStats.__doc__


_FROZEN_CLASS = {
    nn.BatchNorm1d: FrozenStatsBatchNorm1d,
    nn.BatchNorm2d: FrozenStatsBatchNorm2d,
    nn.BatchNorm3d: FrozenStatsBatchNorm3d,
    nn.SyncBatchNorm: FrozenStatsSyncBatchNorm,
}
_PLAIN_CLASS = {frozen: plain for plain, frozen in _FROZEN_CLASS.items()}


def is_batchnorm(module: nn.Module) -> bool:
    """True for every BatchNorm layer (frozen statistics or not)."""
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def batchnorm_stats_frozen(module: nn.Module) -> bool:
    """True when ``module`` has BatchNorm layers (or is one) and all of them have frozen statistics.

    Example:
        >>> block = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        >>> freeze_batchnorm_stats(block)
        >>> batchnorm_stats_frozen(block), block[1].train().training
        (True, False)
    """
    layers = [m for m in module.modules() if is_batchnorm(m)]
    return bool(layers) and all(isinstance(m, _FrozenStats) for m in layers)


def freeze_batchnorm_stats(module: nn.Module, frozen: bool = True) -> None:
    """Freeze (or release) the running statistics of every BatchNorm inside ``module``.

    While frozen, ``model.train()`` cannot switch these layers back to batch statistics: their
    running mean and variance stay exactly as they are (bitwise).

    Raises:
        TypeError: a BatchNorm of a class the kit does not know (write its frozen class here).
    """
    for m in module.modules():
        if not is_batchnorm(m):
            continue
        if frozen and not batchnorm_stats_frozen(m):
            if type(m) not in _FROZEN_CLASS:
                raise TypeError(
                    f"Cannot freeze the statistics of a {type(m).__name__}: the kit knows "
                    f"{', '.join(c.__name__ for c in _FROZEN_CLASS)}."
                )
            m.__class__ = _FROZEN_CLASS[type(m)]
            m.training = False
        elif not frozen and batchnorm_stats_frozen(m):
            m.__class__ = _PLAIN_CLASS[type(m)]
            m.training = module.training


# ----------------------------------------------------------------------------- layer groups


def layer_groups(model: nn.Module) -> LayerGroups:
    """Named groups of modules in input-to-output order.

    ResNet: ``stem`` (conv1+bn1), ``layer1``..``layer4``, ``fc``. AlexNet/VGG: ``conv1``..
    ``convN``, ``fc1``..``fcM``. Multi-task models: the backbone's groups, then ``heads``.

    Example:
        >>> from course_utils.models import build_model
        >>> [name for name, _ in layer_groups(build_model("resnet18", 10, pretrained=False))]
        ['stem', 'layer1', 'layer2', 'layer3', 'layer4', 'fc']
    """
    if is_multitask(model):
        backbone_groups = [(n, mods) for n, mods in layer_groups(model.backbone) if _owns_parameters(mods)]
        return backbone_groups + [("heads", [model.heads])]
    return architecture_of(model).groups(model)


def group_names(model: nn.Module) -> list[str]:
    """Names of ``layer_groups(model)``."""
    return [name for name, _ in layer_groups(model)]


def _owns_parameters(modules: list[nn.Module]) -> bool:
    return any(True for m in modules for _ in m.parameters())


def _group_parameters(modules: list[nn.Module]):
    for module in modules:
        yield from module.parameters()


def _set_group_trainable(modules: list[nn.Module], trainable: bool, freeze_bn_stats: bool = True) -> None:
    """Turn one group's parameters on or off, and pin its BatchNorm statistics while frozen."""
    for p in _group_parameters(modules):
        p.requires_grad = trainable
    for module in modules:
        freeze_batchnorm_stats(module, frozen=(not trainable) and freeze_bn_stats)


def _freeze_exactly(model: nn.Module, names, freeze_bn_stats: bool = True) -> None:
    """Freeze exactly the named groups and make every other group trainable.

    Raises:
        ValueError: a name is not one of ``group_names(model)``.
    """
    groups = layer_groups(model)
    valid = [n for n, _ in groups]
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(f"Unknown layer group(s) {unknown}. This model's groups are: {', '.join(valid)}.")
    for name, modules in groups:
        _set_group_trainable(modules, trainable=name not in names, freeze_bn_stats=freeze_bn_stats)


def head_group_names(model: nn.Module) -> list[str]:
    """The last parameter-owning group: the classifier head (``fc``, ``fc3``, ``head``, ``heads``...)."""
    owning = [n for n, mods in layer_groups(model) if _owns_parameters(mods)]
    return owning[-1:]


def apply_strategy(model: nn.Module, name: str, freeze_bn_stats: bool = True) -> None:
    """Freeze layer groups by the named strategy of the COMP5541 notebook's part C.

    Args:
        model: a model from ``build_model``, or a multi-task model (see ``models.multitask``).
        name: ``none`` (train everything), ``early`` (freeze the early blocks; for ResNet
            layer1+layer2, stem stays trainable as in the reference run), ``middle`` (for
            ResNet layer2+layer3), ``last_only`` (train the head only).
        freeze_bn_stats: keep BatchNorm running statistics of frozen groups fixed.

    Example:
        >>> from course_utils.models import build_model
        >>> model = build_model("resnet18", num_classes=10, pretrained=False)
        >>> apply_strategy(model, "early")
        >>> [row["group"] for row in trainable_summary(model) if row["trainable"] == 0]
        ['layer1', 'layer2']
    """
    _freeze_exactly(model, strategy_groups(model, name), freeze_bn_stats=freeze_bn_stats)


def strategy_groups(model: nn.Module, name: str) -> list[str]:
    """The layer groups that strategy ``name`` freezes on ``model`` (from the architecture table).

    Example:
        >>> from course_utils.models import build_model
        >>> strategy_groups(build_model("resnet18", num_classes=10, pretrained=False), "middle")
        ['layer2', 'layer3']
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}. Choose one of: {', '.join(STRATEGIES)}.")
    if name == "last_only":
        head = head_group_names(model)
        return [n for n in group_names(model) if n not in head]
    target = model.backbone if is_multitask(model) else model
    return list(architecture_of(target).strategies[name])


def set_trainable_layers(model: nn.Module, n: int, freeze_bn_stats: bool = True) -> list[str]:
    """Train only the last ``n`` parameter-owning groups (TRAINABLE_LAYERS of the trainable-layers write-up).

    For ResNet: 1 = fc, 2 = layer4 + fc, 3 = layer3 + layer4 + fc, 4 = layer2..fc,
    5 = layer1..fc, 6 = everything. Groups without parameters are not counted.

    Returns:
        The names of the trainable groups.

    Raises:
        ValueError: ``n`` is not between 1 and the number of parameter-owning groups.

    Example:
        >>> from course_utils.models import build_model
        >>> set_trainable_layers(build_model("resnet18", num_classes=10, pretrained=False), 2)
        ['layer4', 'fc']
    """
    owning = [name for name, mods in layer_groups(model) if _owns_parameters(mods)]
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= len(owning):
        raise ValueError(
            f"n={n!r} trainable layers is out of range for this model: it has {len(owning)} "
            f"layer groups with parameters ({', '.join(owning)}); choose 1..{len(owning)}."
        )
    trainable = owning[-n:]
    _freeze_exactly(model, [g for g in group_names(model) if g not in trainable], freeze_bn_stats=freeze_bn_stats)
    return trainable


def freeze_until(model: nn.Module, group: str, freeze_bn_stats: bool = True) -> list[str]:
    """Freeze every group from the input up to and including ``group`` (the multi-task fruit article).

    ``freeze_until(model, "layer2")`` on ResNet18 freezes stem (conv1+bn1), layer1 and
    layer2; layer3, layer4 and the heads train.

    Returns:
        The names of the frozen groups.

    Example:
        >>> from course_utils.models import build_model
        >>> freeze_until(build_model("resnet18", num_classes=10, pretrained=False), "layer2")
        ['stem', 'layer1', 'layer2']
    """
    names = group_names(model)
    if group not in names:
        raise ValueError(f"Unknown layer group {group!r}. This model's groups are: {', '.join(names)}.")
    frozen = names[: names.index(group) + 1]
    _freeze_exactly(model, frozen, freeze_bn_stats=freeze_bn_stats)
    return frozen


def unfreeze_all(model: nn.Module) -> None:
    """Make every parameter trainable and release every BatchNorm's frozen statistics.

    Example:
        >>> from course_utils.models import build_model
        >>> model = build_model("resnet18", num_classes=10, pretrained=False)
        >>> apply_strategy(model, "last_only")
        >>> unfreeze_all(model)
        >>> len(trainable_parameters(model)) == len(list(model.parameters())), type(model.bn1).__name__
        (True, 'BatchNorm2d')
    """
    for p in model.parameters():
        p.requires_grad = True
    freeze_batchnorm_stats(model, frozen=False)


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters with ``requires_grad``: what an optimizer should receive.

    Frozen parameters have no gradient, so torch's optimizers would skip them anyway; leaving
    them out keeps the optimizer's parameter list to what actually trains.

    Example:
        >>> import torch
        >>> from course_utils.models import build_model
        >>> model = build_model("resnet18", num_classes=10, pretrained=False)
        >>> _ = freeze_until(model, "layer4")
        >>> optimizer = torch.optim.SGD(trainable_parameters(model), lr=1e-3, momentum=0.9)
        >>> sum(p.numel() for group in optimizer.param_groups for p in group["params"])
        5130
    """
    return [p for p in model.parameters() if p.requires_grad]


def trainable_summary(model: nn.Module) -> list[dict]:
    """Per group: name, trainable and total parameter counts, and whether BN stats are pinned.

    Example:
        >>> from course_utils.models import build_model
        >>> model = build_model("resnet18", num_classes=10, pretrained=False)
        >>> freeze_until(model, "layer1")
        ['stem', 'layer1']
        >>> for row in trainable_summary(model)[:3]: print(row)
        {'group': 'stem', 'trainable': 0, 'total': 9536, 'bn_stats': 'frozen'}
        {'group': 'layer1', 'trainable': 0, 'total': 147968, 'bn_stats': 'frozen'}
        {'group': 'layer2', 'trainable': 525568, 'total': 525568, 'bn_stats': 'updating'}
    """
    rows = []
    for name, modules in layer_groups(model):
        params = list(_group_parameters(modules))
        pinned = [batchnorm_stats_frozen(m) for mod in modules for m in mod.modules() if is_batchnorm(m)]
        bn_stats = "-" if not pinned else "frozen" if all(pinned) else "updating" if not any(pinned) else "mixed"
        rows.append(
            {
                "group": name,
                "trainable": sum(p.numel() for p in params if p.requires_grad),
                "total": sum(p.numel() for p in params),
                "bn_stats": bn_stats,
            }
        )
    return rows


def format_trainable_summary(model: nn.Module) -> str:
    """``trainable_summary`` as an aligned text table, with a total line."""
    rows = trainable_summary(model)
    width = max(len(r["group"]) for r in rows + [{"group": "total"}])
    lines = [f"{'group':<{width}}  {'trainable':>12}  {'total':>12}  bn stats"]
    for r in rows:
        lines.append(f"{r['group']:<{width}}  {r['trainable']:>12,}  {r['total']:>12,}  {r['bn_stats']}")
    trainable = sum(r["trainable"] for r in rows)
    total = sum(r["total"] for r in rows)
    lines.append(
        f"{'total':<{width}}  {trainable:>12,}  {total:>12,}  ({100 * trainable / max(total, 1):.1f}% trainable)"
    )
    return "\n".join(lines)


def _split_groups(model: nn.Module):
    owning = [(n, mods) for n, mods in layer_groups(model) if _owns_parameters(mods)]
    head = set(head_group_names(model))
    backbone = [(n, mods) for n, mods in owning if n not in head]
    heads = [(n, mods) for n, mods in owning if n in head]
    return backbone, heads


def _trainable_of(groups) -> list[nn.Parameter]:
    return [p for _, mods in groups for p in _group_parameters(mods) if p.requires_grad]


def depth_tiered_param_groups(
    model: nn.Module, tier_lrs: tuple[float, float, float] = (1e-6, 1e-5, 1e-4), head_lr: float = 1e-3
) -> list[dict]:
    """Learning rates that grow with depth (the ResNet50 fine-tuning answer): early, middle, late tiers and the head.

    The backbone's parameter-owning groups are split by position: the first quarter
    is *early*, the last quarter *late*, the rest *middle* (at least one group each when
    there are three or more).

    Returns:
        Optimizer groups with ``name`` set to ``early``/``middle``/``late``/``head``.
    """
    backbone, heads = _split_groups(model)
    count = len(backbone)
    early_end = max(1, round(count / 4)) if count >= 3 else 0
    late_start = count - max(1, round(count / 4)) if count >= 2 else count
    tiers = {
        "early": backbone[:early_end],
        "middle": backbone[early_end:late_start],
        "late": backbone[late_start:],
    }
    groups = [{"params": _trainable_of(tiers[t]), "lr": lr, "name": t} for t, lr in zip(tiers, tier_lrs)]
    groups.append({"params": _trainable_of(heads), "lr": head_lr, "name": "head"})
    return [g for g in groups if g["params"]]
