"""Data: datasets, subsets, transforms and loaders (per-image, or batched on the training device)."""

from .cifar import CIFAR10_CLASSES, cifar10
from .datasets import TensorImageDataset, as_uint8_images, digits_dataset
from .device_loader import DeviceImageLoader
from .fruit import FruitFreshnessDataset
from .loaders import make_loader
from .subsets import class_counts, get_targets, subset_fraction, subset_per_class
from .transforms import image_transforms, unnormalize
