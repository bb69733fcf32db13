# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""What :mod:`.cuda_graph` needs of a device: capture and replay, the random
state, a side stream, and autocast around the capture. A test stands in a
CPU version whose replay reruns the captured function."""
import contextlib
from typing import Callable, Iterator, List

import torch
from torch import Tensor


class CUDAGraphs:
    """Capture and replay with CUDA graphs: what
    :class:`~mmdet_slf.slf.cuda_graph.CapturedCall` needs of a device, so
    that a test can stand in a replay that reruns the captured function."""

    device_type = 'cuda'

    @staticmethod
    def new_graph() -> 'torch.cuda.CUDAGraph':
        return torch.cuda.CUDAGraph()

    @staticmethod
    def capture(graph, fn: Callable[[], List], pool=None) -> List:
        """Capture ``fn()`` into ``graph`` and return its (static) result.
        Thread-local mode: another thread's CUDA work (a data loader's pin
        memory thread) is not an error."""
        with torch.cuda.graph(graph, pool=pool,
                              capture_error_mode='thread_local'):
            return fn()

    @staticmethod
    def replay(graph) -> None:
        graph.replay()

    @staticmethod
    def pool(graph):
        return graph.pool()

    @staticmethod
    def rng_state(device: torch.device) -> Tensor:
        return torch.cuda.get_rng_state(device)

    @staticmethod
    def set_rng_state(state: Tensor, device: torch.device) -> None:
        torch.cuda.set_rng_state(state, device)

    @staticmethod
    @contextlib.contextmanager
    def side_stream(device: torch.device) -> Iterator[None]:
        """Run the block on a new stream that follows the current one."""
        current = torch.cuda.current_stream(device)
        stream = torch.cuda.Stream(device)
        stream.wait_stream(current)
        try:
            with torch.cuda.stream(stream):
                yield
        finally:
            # also after an error, so that what restores the buffers runs
            # after what the block issued
            current.wait_stream(stream)

    @staticmethod
    def capturing() -> bool:
        return torch.cuda.is_current_stream_capturing()

    @staticmethod
    def on_device(device: torch.device) -> contextlib.AbstractContextManager:
        """``device`` as the current device for the block: a capture runs
        on a stream of the current device, and a replay is launched on the
        current stream, so both must be on the device of the tensors the
        graph reads, whichever device the process has current."""
        return torch.cuda.device(device)


def autocast_without_cache(
        device_type: str) -> contextlib.AbstractContextManager:
    """The current autocast with its weight cache off, which capture needs
    (a cast cached before the capture would be baked into the graph); the
    casts are the same. A null context without autocast."""
    if not torch.is_autocast_enabled(device_type):
        return contextlib.nullcontext()
    return torch.autocast(device_type,
                          dtype=torch.get_autocast_dtype(device_type),
                          cache_enabled=False)


def without_autocast(device_type: str) -> contextlib.AbstractContextManager:
    """Autocast off, as for a backward pass that runs after the autocast
    region of its forward (mmengine's ``AmpOptimWrapper``)."""
    return torch.autocast(device_type, enabled=False)
