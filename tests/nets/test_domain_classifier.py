"""The domain classifier's network: its features and logits for images of any size it takes."""

import pytest
import torch
from gansweep.nets.domain_classifier import DomainClassifier


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_shapes_of_features_and_logits(shape):
    model = DomainClassifier(in_channels=shape[0], num_classes=7).eval()
    x = torch.rand(5, *shape)
    assert model.features(x).shape == (5, 256)
    assert model(x).shape == (5, 7)
    feats, logits = model.features_and_logits(x)
    assert torch.equal(feats, model.features(x)) and torch.equal(logits, model(x))
