# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Which training calls of a weighting replay its CUDA graphs.

:class:`CapturedCalls` keeps a weighting's one :class:`CapturedCall` (the
signature of its first training call) and decides, call by call, whether
the call replays it or runs eagerly; :mod:`.cuda_graph` describes the
graphs and lists the calls that run eagerly.
"""
import warnings
from typing import List, Optional, Tuple

import torch
from mmengine.dist import get_world_size
from torch import Tensor

from .cuda_graph import CapturedCall
from .graph_device import CUDAGraphs


class CapturedCalls:
    """The captured call of a weighting: its first training call's
    signature (later signatures run eagerly); off by default.

    Args:
        enabled (bool): Capture training calls on CUDA. Defaults to False.
        graphs (CUDAGraphs): How to capture and replay, and on which device
            type. Defaults to :class:`CUDAGraphs`.
    """

    def __init__(self,
                 enabled: bool = False,
                 graphs: CUDAGraphs = CUDAGraphs()) -> None:
        if not isinstance(enabled, bool):
            raise ValueError(
                f'cuda_graph must be True or False, got {enabled!r}')
        self.enabled = enabled
        self.graphs = graphs
        self.call: Optional[CapturedCall] = None
        self.signature: Optional[tuple] = None
        # The weighting's parameters and buffers when the call was
        # captured: the graphs read and write exactly these.
        self._tensors: List[Tuple[int, int, torch.dtype]] = []
        self._warned_replaced = False

    def __getstate__(self) -> dict:
        # Graphs are bound to this process's device memory: a copy (a
        # deepcopy of the model, a pickle) captures its own.
        return dict(self.__dict__, call=None, signature=None, _tensors=[],
                    _warned_replaced=False)

    @staticmethod
    def _identify(weighting) -> List[Tuple[int, int, torch.dtype]]:
        return [(id(tensor), tensor.data_ptr(), tensor.dtype)
                for tensor in list(weighting.parameters()) +
                list(weighting.buffers())]

    def drop_if_moved(self, weighting) -> None:
        """Forget the capture if the weighting's parameters or buffers are
        other tensors or in other memory than when captured (``.to()``,
        ``load_state_dict(assign=True)``): the graphs would read and write
        the old ones. The next training call is captured again."""
        if self.call is not None \
                and self._identify(weighting) != self._tensors:
            self.call = self.signature = None

    def lookup(self, weighting, raw: Tensor,
               features: Optional[Tensor]) -> Optional[CapturedCall]:
        """The captured call for these inputs (captured now if new), or None
        where the call must run eagerly."""
        if not (self.enabled and weighting.training
                and raw.device.type == self.graphs.device_type
                and torch.is_grad_enabled()):
            return None
        if features is not None and features.device != raw.device:
            return None  # the eager call reports what is wrong
        if self.graphs.capturing() or get_world_size() > 1:
            return None
        device_type = raw.device.type
        autocast = torch.is_autocast_enabled(device_type)
        signature = (tuple(raw.shape), raw.dtype, raw.device, autocast,
                     torch.get_autocast_dtype(device_type)
                     if autocast else None)
        if features is not None:
            signature += (tuple(features.shape), features.dtype,
                          features.requires_grad)
        if self.call is None:
            self.call = CapturedCall(weighting, raw, features,
                                     graphs=self.graphs)
            self.signature = signature
            self._tensors = self._identify(weighting)
            self._warned_replaced = False
            return self.call
        if signature != self.signature:
            # One signature per weighting, its first training call's (a
            # last, smaller batch runs eagerly). A later capture would run
            # while the last step's autograd graph is alive (mmengine's
            # logged losses keep it), with the parameters' gradient
            # accumulators on the default stream: the backward capture
            # would synchronise with it, which fails
            # (cudaErrorStreamCaptureImplicit, on an H200).
            return None
        if self.call.pending:
            # A second call before the backward pass of the last replay (a
            # loss called once per feature level, such as SLFLoss in
            # GFLHead): replaying now would give the earlier call this
            # call's gradient, so this one runs eagerly.
            return None
        if self._identify(weighting) != self._tensors:
            # Parameters or buffers replaced where no hook sees it
            # (``param.data = ...``, a DataParallel replica, which shares
            # this object): the graphs would read and write the captured
            # tensors, not these. Eager calls compute with these.
            if not self._warned_replaced:
                self._warned_replaced = True
                warnings.warn(
                    f'{type(weighting).__name__}: its parameters or buffers '
                    'are not the tensors its CUDA graphs captured (replaced '
                    'by assignment to .data, or a DataParallel replica), so '
                    'its calls run eagerly from now on. Move it with .to() '
                    'or load_state_dict to capture again, or set '
                    'cuda_graph=False')
            return None
        return self.call
