# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""A weighting's training call as two CUDA graphs: its forward and backward.

At small batches on a fast GPU a detector's training step is host-bound:
the device waits for the host to issue kernels, so every operator a weighting
issues costs its host time in full (about 20 microseconds on an H100, with
the Python around it). The SLF weighting issues about a hundred per step:
its decision network, the decision objective, the running means and the
diagnostics, forward and backward. A CUDA graph replays the kernels of a
captured call for about the host time of one launch.

What is captured is :meth:`BaseWeighting._issue` (everything a call computes
before its one host read, the non-finite check) and the backward of its
outputs that carry gradient (the decision objective; Algorithm 1's weights
and guards) with respect to the weighting's parameters, and to the decision
features where those carry gradient (``detach_features=False``). What stays
eager: stacking the terms, ``weights * raw``, the non-finite check and its
policy, the optimizer step.

A replay runs the kernels of the capture on the same values, so training is
bitwise what it is without graphs: ``tests/test_slf/test_cuda_graph.py``
checks it for every decision objective and estimator, on the CPU with a
stand-in that reruns the captured function, and with real graphs where CUDA
is present (run on an H100 and an H200; ``docs/yolo.md`` says which code).
One case differs in rounding: under autocast, a weighting called several
times before one backward pass (SLFLoss, once per feature level). Eager
calls in one autocast region share one cached half-precision cast of each
decision-network weight, so their gradients are summed in half precision
before the cast back; the replayed first call casts its own (a capture needs
the cache off), so its gradient reaches float32 on its own, and the float32
sum rounds differently. One call per backward pass (the YOLO heads,
``SLFDetector``) is bitwise.

A capture serves one signature: the shapes and dtypes of the terms and
features, and autocast. The first training call is captured (after two
warm-up calls, whose changes to the buffers and to the CUDA random state are
undone). These calls run eagerly:

* later calls of another signature (a last, smaller batch of per-image
  terms);
* a call made before the backward pass of the last replay (a loss called
  once per feature level before one backward pass): the backward graph
  reads the last replay's activations. A replay whose backward never runs
  (its loss discarded) leaves the later calls eager;
* calls in eval mode, without autograd, off CUDA, in a distributed run (the
  running means are averaged over the ranks by a collective, which is not
  captured) and inside another capture.

A moved weighting (``.to()``, ``.half()``, ``load_state_dict(assign=True)``)
drops its graphs and captures again; a move during training may make that
capture fail, for the reason given in
:meth:`~.captured_calls.CapturedCalls.lookup`.
Parameters or buffers replaced where no hook sees it (``param.data = ...``,
a DataParallel replica) are found at the next call, which compares the
tensors with the captured ones: that call and the later ones run eagerly,
with a warning. Capture and replay run with the weighting's device as the
current device, whichever device the process has current. A capture that
fails is an error naming ``cuda_graph=False``. Parameters frozen or unfrozen
after the capture are not seen by it: set ``cuda_graph=False`` for such a
schedule.

Which call replays and which runs eagerly is decided by
:class:`~.captured_calls.CapturedCalls`.
"""
from functools import partial
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .graph_device import CUDAGraphs, autocast_without_cache, without_autocast


class _Replay(torch.autograd.Function):
    """Replays a :class:`CapturedCall`'s forward graph, and its backward
    graph in the backward pass. The inputs are the call's tensor inputs,
    then the weighting's trainable parameters; the outputs are copies of
    the captured outputs that carry gradient."""

    @staticmethod
    def forward(ctx, call: 'CapturedCall', *tensors: Tensor):
        ctx.call = call
        outputs = call.replay_forward(tensors[:call.num_inputs])
        ctx.replay = call.replays
        return outputs

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads: Tensor):
        call = ctx.call
        if call.replays != ctx.replay:
            # The backward graph reads the activations of the last forward
            # replay, which are another call's now.
            raise RuntimeError(
                'a weighting call captured as a CUDA graph was replayed '
                'again before the backward pass of an earlier replay: its '
                'gradient would be computed from the later call. Build the '
                'weighting with cuda_graph=False to run a backward pass '
                'again (retain_graph=True)')
        if not call.pending:
            # The backward graph was captured without retain_graph: the
            # memory of the activations it reads was reused within the
            # capture, so a second replay would read overwritten values.
            raise RuntimeError(
                'the backward pass of a weighting call captured as a CUDA '
                'graph ran twice for one call (retain_graph=True): the '
                'second would read activations the first overwrote. Build '
                'the weighting with cuda_graph=False to run a backward pass '
                'again')
        return (None, ) + call.replay_backward(grads)


class CapturedCall:
    """The forward and backward graphs of one weighting call signature.

    Args:
        weighting (BaseWeighting): The weighting, in training mode, on CUDA.
        raw (Tensor): Raw terms of the first call of this signature.
        features (Tensor, optional): Its decision features.
        warmup (int): Eager calls (forward and backward) before capture, on
            a side stream: lazy initialisation (cuBLAS handles, workspaces)
            must not fall into the capture. Their effect on the buffers and
            the random state is undone. Defaults to 2.
        graphs (CUDAGraphs): How to capture and replay. Defaults to
            :class:`CUDAGraphs`.
    """

    def __init__(self,
                 weighting,
                 raw: Tensor,
                 features: Optional[Tensor],
                 warmup: int = 2,
                 graphs: CUDAGraphs = CUDAGraphs()) -> None:
        device = raw.device
        self.device = device
        self.graphs = graphs
        self.replays = 0  # forward replays: a backward must follow its own
        # A replay whose backward has not run yet: the backward graph reads
        # that replay's activations, so another call must not replay now.
        self.pending = False
        inputs = [raw.detach()] if features is None else [raw.detach(),
                                                          features]
        self.num_inputs = len(inputs)
        self.static_inputs = [
            x.detach().clone().requires_grad_(x.requires_grad)
            for x in inputs
        ]
        self.params = [p for p in weighting.parameters() if p.requires_grad]
        wrt = self.params + [x for x in self.static_inputs if x.requires_grad]

        def run() -> List[Tensor]:
            static_raw = self.static_inputs[0]
            static_features = self.static_inputs[1] \
                if self.num_inputs > 1 else None
            weights, objective, keys, values, finite, saved = \
                weighting._issue(static_raw, static_features)
            self.objective_keys = list(objective)
            self.diagnostic_keys = keys
            return [weights, *objective.values(), values, finite, *saved]

        def gradients(outputs: List[Tensor],
                      grad_outputs: Sequence[Tensor]) -> Tuple:
            return torch.autograd.grad(
                [outputs[i] for i in self.differentiable], wrt, grad_outputs,
                allow_unused=True)

        buffers = weighting.state_buffers()
        before = [buffer.clone() for buffer in buffers]
        random_state = graphs.rng_state(device)
        autocast = partial(autocast_without_cache, device.type)
        try:
            # Errors of the call itself (missing features, ...) surface
            # here, eagerly, as they would without graphs.
            with graphs.on_device(device), graphs.side_stream(device):
                for _ in range(warmup):
                    self._warm_up(run, gradients, autocast)
            try:
                with graphs.on_device(device):
                    self._capture(run, gradients, autocast)
            except Exception as error:
                # Not a silent fall back to eager calls: a failed capture
                # can leave CUDA's random generator in capture mode, and the
                # next random draw would fail far from here.
                raise RuntimeError(
                    f'{type(weighting).__name__}: capturing a training call '
                    f'as a CUDA graph failed ({type(error).__name__}: '
                    f'{error}). Set cuda_graph=False in its config '
                    '(model.bbox_head.weighting for the YOLO configs, '
                    'model.weighting for SLFDetector, the weighting dict of '
                    'an SLFLoss) to run its calls eagerly, with the same '
                    'arithmetic and more host time') from error
            # Without the capture's autograd graph, which would keep its
            # parameters' gradient accumulators on the capture stream (and
            # cost a stream synchronisation in every backward pass). In
            # place: the list is the capture's result.
            self.outputs[:] = [output.detach() for output in self.outputs]
        finally:
            for buffer, saved in zip(buffers, before):
                buffer.copy_(saved)
            graphs.set_rng_state(random_state, device)
        self.num_objective = len(self.objective_keys)

    def _capture(self, run: Callable[[], List[Tensor]], gradients: Callable,
                 autocast: Callable) -> None:
        """Capture the forward graph, under autocast as the call runs, then
        the backward graph, without autocast as a backward pass runs after
        the forward's autocast region."""
        graphs = self.graphs
        self.forward_graph = graphs.new_graph()
        with autocast():
            self.outputs = graphs.capture(self.forward_graph, run)
        self.differentiable = [
            i for i, o in enumerate(self.outputs) if o.requires_grad
        ]
        self.grad_outputs = [
            torch.empty_like(self.outputs[i]) for i in self.differentiable
        ]
        self.backward_graph = None
        self.grads: List[Optional[Tensor]] = []
        if self.differentiable:
            self.backward_graph = graphs.new_graph()
            with without_autocast(self.outputs[0].device.type):
                self.grads = graphs.capture(
                    self.backward_graph,
                    lambda: list(gradients(self.outputs, self.grad_outputs)),
                    pool=graphs.pool(self.forward_graph))

    def _warm_up(self, run: Callable[[], List[Tensor]], gradients: Callable,
                 autocast: Callable) -> None:
        """One eager call and its backward. Nothing of its autograd graph
        outlives it: a parameter's gradient accumulator created here would
        be reused by the capture, on this stream, and the backward capture
        would synchronise with it, which breaks the capture."""
        with autocast():
            outputs = run()
        self.differentiable = [
            i for i, o in enumerate(outputs) if o.requires_grad
        ]
        if self.differentiable:
            with without_autocast(outputs[0].device.type):
                gradients(outputs, [
                    torch.ones_like(outputs[i]) for i in self.differentiable
                ])

    def replay_forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """Copy ``inputs`` into the capture's, replay, and return copies of
        the outputs that carry gradient (a later call overwrites the
        captured ones)."""
        # Without grad mode: a static input that requires grad is a leaf,
        # which autograd refuses to copy into (the gradients reach the
        # caller's tensors through the backward graph, not these copies).
        with torch.no_grad():
            for static, value in zip(self.static_inputs, inputs):
                if static.data_ptr() != value.data_ptr():
                    static.copy_(value)
        with self.graphs.on_device(self.device):
            self.graphs.replay(self.forward_graph)
        self.replays += 1
        self.pending = bool(self.differentiable)
        return tuple(self.outputs[i].clone() for i in self.differentiable)

    def replay_backward(
            self, grads: Sequence[Tensor]) -> Tuple[Optional[Tensor], ...]:
        """Replay the backward graph for ``grads`` of the outputs that carry
        gradient; the gradients of the call's inputs, then of the
        parameters, as copies (autograd may keep a gradient it is given as
        a parameter's ``.grad``, which the next replay would overwrite)."""
        for static, grad in zip(self.grad_outputs, grads):
            static.copy_(grad)
        with self.graphs.on_device(self.device):
            self.graphs.replay(self.backward_graph)
        self.pending = False
        found = iter(self.grads)
        param_grads = [next(found) for _ in self.params]
        input_grads = [
            next(found) if x.requires_grad else None
            for x in self.static_inputs
        ]
        return tuple(None if grad is None else grad.clone()
                     for grad in input_grads + param_grads)

    def __call__(self, raw: Tensor, features: Optional[Tensor]):
        """What :meth:`BaseWeighting._issue` returns, from a replay."""
        inputs = [raw] if features is None else [raw, features]
        if self.differentiable:
            copies = _Replay.apply(self, *inputs, *self.params)
        else:
            copies = self.replay_forward(inputs)
        outputs = list(self.outputs)
        for i, copy in zip(self.differentiable, copies):
            outputs[i] = copy
        # The weights, objective terms and diagnostics outlive the call
        # (autograd saves the weights for the backward of weights * raw), so
        # the captured ones are copied; finite and the saved buffers are
        # read before the next call.
        escaping = 2 + self.num_objective
        outputs[:escaping] = [
            value if i in self.differentiable else value.clone()
            for i, value in enumerate(outputs[:escaping])
        ]
        count = self.num_objective
        weights = outputs[0]
        objective = dict(zip(self.objective_keys, outputs[1:1 + count]))
        values, finite = outputs[1 + count], outputs[2 + count]
        saved = outputs[3 + count:]
        return (weights, objective, list(self.diagnostic_keys), values,
                finite, saved)
