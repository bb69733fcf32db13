# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The method's tests run many tiny steps: one thread is faster for them and
does not oversubscribe a machine that is busy with other work."""
import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
