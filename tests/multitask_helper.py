"""A multi-task model for the tests: what notebook 04's students write as FruitNet.

The student library holds no multi-task model class (writing one is notebook 04's first
exercise); it only recognises one by its ``backbone`` and ``heads`` (course_utils.models.multitask).
"""

from __future__ import annotations

import torch
from torch import nn

import course_utils as cu


class TwoHeads(nn.Module):
    """A shared backbone (classifier replaced by Identity) and one Linear head per task."""

    def __init__(self, backbone: nn.Module, feature_dim: int, heads: dict[str, int]):
        super().__init__()
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.heads = nn.ModuleDict({task: nn.Linear(feature_dim, n) for task, n in heads.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone(x)
        return {task: head(features) for task, head in self.heads.items()}


def multitask_model(name: str, heads: dict[str, int], pretrained: bool = False) -> TwoHeads:
    """``name``'s backbone from the table with its head replaced by Identity, and ``heads``."""
    backbone = cu.models.imagenet_model(name, pretrained=pretrained)
    head_path = cu.models.get_architecture(name).head
    feature_dim = backbone.get_submodule(head_path).in_features
    parent, _, attribute = head_path.rpartition(".")
    setattr(backbone.get_submodule(parent) if parent else backbone, attribute, nn.Identity())
    return TwoHeads(backbone, feature_dim, heads)
