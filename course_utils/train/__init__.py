"""Training: one epoch, one evaluation, ``fit`` and ``fine_tune``, feature caching, checkpoints, speed-ups."""
from .checkpoint import Checkpoint
from .features import extract_features
from .loop import EarlyStopping, History, evaluate, fine_tune, fit, make_optimizer, progress, train_one_epoch
from .reproducibility import seed_everything
from .speedups import Speedups
