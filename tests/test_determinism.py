"""Same command, same numbers: a short training run twice, in two processes, gives identical histories.

The second process runs next to a CPU hog started by this test (and stopped by it), so the
check also covers a busy machine: what varies with load (scheduling, which thread finishes
first) must not reach the numbers. Both data paths are covered: the on-device batches and
the per-image ``DataLoader`` with two worker processes, both with shuffling and augmentation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

TRAINING = textwrap.dedent("""
    import hashlib, json, sys
    import torch
    from torch import nn
    import course_utils as cu
    from course_utils.train.loop import TIMING_COLUMNS

    fast = sys.argv[1] == "fast"
    threads = cu.train.reproducibility.pin_threads()
    train_set = cu.data.digits_dataset(train=True)
    mean, std = cu.normalization_for("efficientnet_lite0")
    cu.seed_everything(0)
    subset = cu.subset_fraction(train_set, 0.05, seed=0)
    loader = cu.make_loader(subset, batch_size=16, shuffle=True, augment=True, image_size=32, mean=mean, std=std,
                            fast=fast, num_workers=0 if fast else 2, device="cpu")
    model = cu.build_model("efficientnet_lite0", 10, pretrained=False)
    history = cu.fit(model, loader, loader if fast else None, num_epochs=2, loss_fn=nn.CrossEntropyLoss(),
                     optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9),
                     device="cpu", verbose=False)
    weights = hashlib.sha256(b"".join(t.numpy().tobytes() for t in model.state_dict().values())).hexdigest()
    records = [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in history.records]
    print(json.dumps({"loader": type(loader).__name__, "threads": threads, "records": records, "weights": weights}))
""")


def _train(path: str) -> dict:
    env = {**os.environ, "COURSE_PROGRESS": "off"}
    done = subprocess.run([sys.executable, "-c", TRAINING, path], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("path", ["fast", "per-image"])
def test_a_short_training_gives_identical_histories_in_two_processes_even_on_a_busy_machine(path):
    first = _train(path)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # this test's own load, stopped below
    try:
        second = _train(path)
    finally:
        hog.kill()
        hog.wait()
    assert first["loader"] == ("DeviceImageLoader" if path == "fast" else "ImageFileLoader")
    assert len(first["records"]) == 2 and first["records"][0]["train_loss"] > 0
    # Exactly equal: every loss and accuracy to the last bit, and every weight.
    assert second == first


def test_the_thread_count_is_pinned_from_the_environment(monkeypatch):
    import torch

    from course_utils.train.reproducibility import pin_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("COURSE_NUM_THREADS", "1")
        assert pin_threads() == 1 == torch.get_num_threads()
        monkeypatch.setenv("COURSE_NUM_THREADS", "two")
        with pytest.raises(ValueError, match="COURSE_NUM_THREADS='two' is not a number of threads"):
            pin_threads()
    finally:
        torch.set_num_threads(before)
