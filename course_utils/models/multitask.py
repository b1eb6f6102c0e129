"""Multi-task models: one shared backbone, one named head per task (the multi-task fruit article).

Example:
    >>> model = build_multitask_model("resnet18", {"fruit": 6, "freshness": 2}, pretrained=False)
    >>> model.feature_dim, list(model.heads)
    (512, ['fruit', 'freshness'])
"""
from __future__ import annotations

import torch
from torch import nn

from .architectures import get_architecture
from .build import _set_submodule, build_model, head_in_features


class MultiTaskModel(nn.Module):
    """A shared backbone with an Identity head and one named Linear head per task (the multi-task fruit article).

    Args:
        backbone: a model from the table whose classifier has been replaced by ``nn.Identity``.
        feature_dim: width of the backbone's features (512 for ResNet18).
        heads: ``{task_name: num_classes}``, in the order batches carry their labels.

    Forward: ``x (N, 3, H, W)`` -> ``{task_name: logits (N, num_classes)}``.
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, heads: dict[str, int]):
        super().__init__()
        if not heads:
            raise ValueError("A multi-task model needs at least one head, e.g. heads={'fruit': 6}.")
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.heads = nn.ModuleDict({task: nn.Linear(feature_dim, n) for task, n in heads.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone(x)
        return {task: head(features) for task, head in self.heads.items()}


def build_multitask_model(name: str, heads: dict[str, int], pretrained: bool = True) -> MultiTaskModel:
    """A shared ``name`` backbone (head replaced by Identity) with one Linear head per task.

    Example:
        >>> model = build_multitask_model("resnet18", {"fruit": 6, "freshness": 2}, pretrained=False)
        >>> model.feature_dim
        512
    """
    backbone = build_model(name, num_classes=1, pretrained=pretrained)
    arch = get_architecture(name)
    feature_dim = head_in_features(backbone)
    _set_submodule(backbone, arch.head, nn.Identity())
    return MultiTaskModel(backbone, feature_dim, heads)
