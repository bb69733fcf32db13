# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The decision network ``h(.; v)``: its prior and its layers, by hand."""
import pytest
import torch

import mmdet_slf  # noqa: F401
from mmdet_slf.slf import SLFDecisionNetwork


@pytest.mark.parametrize('prior', [[1.0, 0.0], [0.0, 2.0]])
def test_a_prior_with_a_zero_entry_is_refused(prior):
    """A prior weight of 0 would start its logit at log 0 = -inf: the term
    could never be drawn and the KL to the prior is infinite. The network
    built on its own (not through SLFWeighting, which checks its lambdas
    first) refuses it with a message naming the key."""
    with pytest.raises(ValueError,
                       match=r'prior entries must be finite and > 0'):
        SLFDecisionNetwork(3, 2, prior=prior)


def test_hidden_layer_is_rectified():
    """LayerNorm -> Linear -> ReLU -> Linear. With no LayerNorm (two
    inputs), identity Linear layers and zero biases, the logits are
    relu(x): x = [1, -2] gives [1, 0]; without the ReLU they would be x."""
    net = SLFDecisionNetwork(2, 2, hidden_channels=2, prior_init=False,
                             norm_input=False)
    with torch.no_grad():
        for layer in (net.hidden[0], net.fc_out):
            layer.weight.copy_(torch.eye(2))
            layer.bias.zero_()
    logits = net(torch.tensor([[1.0, -2.0], [-0.5, 3.0]]))
    torch.testing.assert_close(logits,
                               torch.tensor([[1.0, 0.0], [0.0, 3.0]]))
