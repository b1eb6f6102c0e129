"""Data: datasets, subsets, transforms and loaders (per-image or batched on the training device)."""
