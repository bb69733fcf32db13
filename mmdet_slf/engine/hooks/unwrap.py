# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The detector a runner's model holds."""
from mmengine.model import BaseTTAModel, is_model_wrapper
from torch import nn


def unwrap_model(model: nn.Module) -> nn.Module:
    """The detector inside ``model``: through a distributed wrapper and a
    test-time-augmentation model (``tools/test.py --tta``), each of which
    keeps it as ``.module``, as mmengine's ``load_state_dict`` unwraps
    both."""
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model
