"""Speed-ups stay off on the CPU unless asked (so CPU results are unchanged); on a GPU they run."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import Subset

import course_utils as cu
from course_utils.train.speedups import Speedups


def test_everything_is_off_on_the_cpu():
    speed = Speedups.for_device("cpu")
    assert (speed.mixed_precision, speed.channels_last, speed.compile_model) == (False, False, False)
    images = torch.randn(2, 3, 8, 8)
    moved, labels = speed.to_device([images, torch.tensor([0, 1])])
    assert moved.is_contiguous() and torch.equal(moved, images)
    model = torch.nn.Conv2d(3, 4, 3)
    speed.prepare_model(model)
    assert model.weight.is_contiguous() and speed.compiled(model) is model
    with speed.autocast():
        assert model(images).dtype == torch.float32


@pytest.mark.parametrize(
    "option,reason",
    [("mixed_precision", "no bfloat16 arithmetic"), ("compile_model", "torch.compile is used on CUDA only")],
)
def test_what_a_cpu_without_bf16_cannot_do_is_explained(monkeypatch, option, reason):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_f": True})  # AVX-512, no BF16
    assert Speedups.for_device("cpu", channels_last=True).channels_last  # this one any CPU can do
    with pytest.raises(ValueError, match=reason):
        Speedups.for_device("cpu", **{option: True})
    with pytest.raises(ValueError, match=reason):  # the settings fit takes, made directly
        Speedups(torch.device("cpu"), **{option: True})


def test_speedups_off_cuda_and_the_cpu_are_cuda_speedups():
    with pytest.raises(ValueError, match="CUDA speed-up and this run is on meta"):
        Speedups(torch.device("meta"), channels_last=True)


def test_bf16_on_a_cpu_that_computes_it(monkeypatch):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": True})
    speed = Speedups.for_device("cpu", mixed_precision=True, channels_last=True)
    model, images = torch.nn.Conv2d(3, 4, 3), torch.randn(2, 3, 8, 8)
    speed.prepare_model(model)
    (moved,) = speed.to_device([images])
    assert model.weight.is_contiguous(memory_format=torch.channels_last)
    assert moved.is_contiguous(memory_format=torch.channels_last)
    with speed.autocast():
        assert model(moved).dtype == torch.bfloat16
    assert Speedups.for_device("cpu").mixed_precision is False  # never on unless asked
    with pytest.raises(ValueError, match="CUDA only"):
        Speedups.for_device("cpu", compile_model=True)


@pytest.mark.parametrize("capability,bf16", [((7, 5), False), ((8, 0), True)])
def test_bf16_only_where_the_gpu_computes_it(monkeypatch, capability, bf16):
    # A T4 (7.5) only emulates bfloat16, slower than float32, though torch.cuda.is_bf16_supported() says yes.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    speed = Speedups.for_device("cuda")
    assert speed.mixed_precision is bf16 and speed.channels_last
    if not bf16:
        with pytest.raises(ValueError, match="Ampere or newer"):
            Speedups.for_device("cuda", mixed_precision=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fit_on_cuda_uses_bf16_channels_last_and_the_device_loader():
    device = torch.device("cuda")
    train_set = Subset(cu.data.digits_dataset(train=True), range(128))
    train = cu.make_loader(train_set, batch_size=32, shuffle=True, augment=True, image_size=64, device=device)
    val = cu.make_loader(cu.data.digits_dataset(train=False), batch_size=128, image_size=64, device=device)
    images, labels = next(iter(train))
    assert images.is_cuda and images.is_contiguous(memory_format=torch.channels_last)
    model = cu.build_model("resnet18", num_classes=10, pretrained=False)
    options = dict(
        loss_fn=nn.CrossEntropyLoss(),
        device=device,
        verbose=False,
        optimizer=lambda m: torch.optim.SGD(cu.trainable_parameters(m), lr=0.01, momentum=0.9),
    )
    history = cu.fit(model, train, val, num_epochs=2, **options)
    assert len(history) == 2 and model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    cu.apply_strategy(model, "last_only")
    plain = cu.make_loader(train_set, batch_size=32, shuffle=True, image_size=64, device=device)
    history = cu.fit(model, plain, val, num_epochs=2, cache_features=True, **options)
    assert len(history) == 2
