"""Training: one epoch, one evaluation, ``fit``, feature caching, checkpoints, speed-ups."""

from .checkpoint import Checkpoint
from .features import extract_features
from .loop import History, evaluate, fit, make_optimizer, predict, progress, train_one_epoch
from .reproducibility import seed_everything
from .speedups import Speedups
