"""Shared helpers for the transfer-learning course notebooks.

Notebooks use ``import course_utils as cu``; everything public is re-exported here.
"""
from .models.architectures import ARCHITECTURES, IMAGENET_MEAN, IMAGENET_STD, available_models, get_architecture
from .assets import (
    AssetUnavailableError,
    CorruptDownloadError,
    NetworkUnavailableError,
    data_dir,
    is_offline,
    offline_mode,
    set_offline,
)
from .data.cifar10 import CIFAR10_CLASSES, cifar10
from .data.datasets import TensorImageDataset, as_uint8_images, digits_dataset
from .data.subsets import class_counts, get_targets, subset_fraction, subset_per_class
from .data.transforms import image_transforms, unnormalize
from .freezing import (
    STRATEGIES,
    apply_strategy,
    backbone_head_param_groups,
    depth_tiered_param_groups,
    format_trainable_summary,
    freeze_batchnorm_stats,
    freeze_groups,
    freeze_until,
    group_names,
    layer_groups,
    set_trainable_layers,
    trainable_parameters,
    trainable_summary,
    unfreeze_all,
)
from .data.device_loader import BatchTransform, DeviceImageLoader
from .train.features import (
    CannotCacheError,
    FeatureCacheMemoryError,
    cache_frozen_prefix,
    split_frozen_prefix,
)
from .data.fruit import FruitFreshnessDataset, parse_class_folder
from .data.loaders import make_loader
from .models.build import PoolingHead, build_model, count_parameters, imagenet_model, normalization_for, replace_head
from .models.multitask import MultiTaskModel, build_multitask_model
from .notebook.parameters import PROFILES, Parameters, load_parameters
from .notebook.results import save_results
from .notebook.session import Session, start_session
from .notebook import plots, results, widgets
from . import selfcheck
from .data.standins import write_synthetic_cifar10, write_synthetic_fruit
from .models.weights import write_standin_checkpoints
from .train.speedups import Speedups
from .train.loop import History, evaluate, fit, get_device, load_checkpoint, make_optimizer, seed_everything

__version__ = "0.1.0"
