"""Training: one epoch, evaluation, ``fit``, feature caching, checkpoints, GPU speed-ups."""
