# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Captured weighting calls (``cuda_graph=True``) train bitwise as eager ones.

On the CPU the captured calls run with :class:`RerunGraphs`, whose "replay"
runs the captured function again: that checks everything around the graphs
(the static inputs and outputs, the warm-up undone, the backward routed to
the parameters and features, the copies that outlive a call, signatures) in
every CI run. On a GPU the same comparisons run with real CUDA graphs, and
the host operators of a captured call are counted.
"""
import contextlib
import copy
import types
import warnings

import pytest
import torch
from mmdet.registry import MODELS

from mmdet_slf.slf.captured_calls import CapturedCalls
from mmdet_slf.slf.graph_device import CUDAGraphs

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason='needs a CUDA device')


class RerunGraphs(CUDAGraphs):
    """Captures by running the function and replays by running it again;
    counts captures and replays. A replay writes its results into the
    tensors of the last one, as a graph overwrites its static memory (so a
    result handed out without a copy changes), then hands out the new ones,
    whose autograd graph the next backward replay uses."""

    device_type = 'cpu'

    def __init__(self):
        self.captures = 0
        self.replays = 0
        self.device = None  # as on_device sets it
        self.devices = []  # the current device of each capture and replay

    @staticmethod
    def new_graph():
        return types.SimpleNamespace()

    @contextlib.contextmanager
    def on_device(self, device):
        outer, self.device = self.device, device
        try:
            yield
        finally:
            self.device = outer

    def capture(self, graph, fn, pool=None):
        self.captures += 1
        self.devices.append(self.device)
        graph.fn = fn
        graph.result = fn()
        return graph.result

    def replay(self, graph):
        self.replays += 1
        self.devices.append(self.device)
        # a replay inside the autograd function's forward (no grad mode)
        # must still record the backward that the next replay runs
        with torch.enable_grad():
            new = graph.fn()
        for old, value in zip(graph.result, new):
            if old is None or value is None:
                continue
            # the memory itself, so that views (an expanded one too) of
            # what the last replay handed out change as on a GPU
            memory, fresh = old.untyped_storage(), value.untyped_storage()
            if memory.data_ptr() != fresh.data_ptr() \
                    and memory.nbytes() == fresh.nbytes():
                memory.copy_(fresh)
        graph.result[:] = new

    @staticmethod
    def pool(graph):
        return None

    @staticmethod
    def rng_state(device):
        return torch.get_rng_state()

    @staticmethod
    def set_rng_state(state, device):
        torch.set_rng_state(state)

    @staticmethod
    def side_stream(device):
        return contextlib.nullcontext()

    @staticmethod
    def capturing():
        return False


TERMS4 = ['coord', 'pred', 'obj', 'noobj']
CASES = {
    'default, 2 scalars': dict(terms=['cls', 'box']),
    'default, 4 terms x 8 images': dict(terms=TERMS4, images=8,
                                        prior=[5, 1, 1, 0.5]),
    'progress': dict(terms=TERMS4, images=8, decision_objective='progress',
                     signal_min_scale=1e-3),
    'teacher': dict(terms=TERMS4, images=8, decision_objective='teacher'),
    'one p_hat per batch': dict(terms=TERMS4, images=8, per_image=False),
    'Algorithm 1, Gumbel K=4, KL guard':
    dict(terms=TERMS4, images=8, prior=[5, 1, 1, 0.5],
         decision_objective='joint', estimator='gumbel'),
    'Algorithm 1, annealed temperature':
    dict(terms=TERMS4, images=8, decision_objective='joint',
         estimator='gumbel', temperature=2.0,
         temperature_schedule=dict(type='exp', final=0.5, num_iters=8)),
    'stratified': dict(terms=TERMS4, images=8, estimator='stratified'),
    'features': dict(terms=TERMS4, images=8, in_channels=6),
    'features with gradient, joint':
    dict(terms=TERMS4, images=8, in_channels=6, decision_objective='joint',
         estimator='gumbel', detach_features=False),
}


def train(case, device, graphs=None, steps=6, images=None, nan_at=None,
          accumulate=1, dtype=torch.float32, autocast=False):
    """Train a weighting on terms ``exp(theta + noise)`` (and features from
    a linear map) for ``steps`` optimizer steps, SGD with momentum for
    everything; return every loss, diagnostic, parameter and buffer."""
    case = dict(case)
    n_images = case.pop('images', 0)
    n_images = n_images if images is None else images
    torch.manual_seed(0)
    weighting = MODELS.build(
        dict(type='SLFWeighting', cuda_graph=graphs is not None, **case))
    if graphs is not None:
        weighting._captured_calls.graphs = graphs
    weighting.diagnostics_logged_by_hook = True
    weighting.to(device=device, dtype=dtype).train()
    n = len(case['terms'])
    max_images = max(n_images) if isinstance(n_images, list) else n_images
    theta = torch.nn.Parameter(
        torch.linspace(-1, 1, n, dtype=dtype, device=device).expand(
            max(max_images, 1), n).clone())
    projection = torch.nn.Parameter(
        torch.randn(n, 6, dtype=dtype, device=device) / 3)
    params = [theta, projection]
    optimizer = torch.optim.SGD(
        [dict(params=params), dict(params=list(weighting.parameters()))],
        lr=0.05, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type if isinstance(
        device, torch.device) else device, enabled=autocast)
    record = []
    for step in range(steps):
        optimizer.zero_grad()
        for micro in range(accumulate):
            count = n_images[step % len(n_images)] if isinstance(
                n_images, list) else n_images
            generator = torch.Generator().manual_seed(100 * step + micro)
            noise = torch.randn(max(count, 1), n, generator=generator).to(
                device=device, dtype=dtype)
            with torch.autocast(device.type if isinstance(
                    device, torch.device) else device, enabled=autocast):
                logits = theta[:max(count, 1)] + noise
                raw = logits.exp()
                if nan_at == step:
                    raw = raw * torch.tensor([float('nan')] + [1.0] *
                                             (n - 1), device=device)
                features = logits @ projection
                if count == 0:
                    raw, features = raw[0], features[0]
                outputs = weighting({
                    f'loss_{name}': value
                    for name, value in zip(case['terms'], raw.unbind(-1))
                }, features)
            loss = sum(value.sum() for key, value in outputs.items()
                       if 'loss' in key)
            scaler.scale(loss).backward()
            record.append(loss.detach().clone())
            _, values = weighting.diagnostic_vector
            record.append(values.clone())
        scaler.step(optimizer)
        scaler.update()
    record += [p.detach().clone() for p in params]
    record += [p.detach().clone() for p in weighting.parameters()]
    record += [b.clone() for b in weighting.buffers()]
    record += [p.grad.clone() for p in weighting.parameters()
               if p.grad is not None]
    return record, weighting


def weighted_step(weighting, step, features, autocast=False):
    """One step of the weighting on four terms of 4 images, scaled by
    ``step + 1`` (``autocast``: the call in bfloat16): the objective and
    the terms' gradient, for comparing runs bitwise."""
    raw = torch.linspace(1, 2, 16).view(4, 4).mul(
        step + 1).requires_grad_(True)
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        out = weighting({f'loss_{t}': raw[:, i]
                         for i, t in enumerate(TERMS4)}, features)
    total = sum(v.sum() for k, v in out.items() if 'loss' in k)
    total.backward()
    return [total.detach(), raw.grad.clone()]


def assert_bitwise(first, second):
    assert len(first) == len(second)
    for i, (a, b) in enumerate(zip(first, second)):
        assert a.dtype == b.dtype and a.shape == b.shape, i
        assert torch.equal(a, b), (i, a, b)


@pytest.mark.parametrize('name', list(CASES))
def test_replayed_calls_train_bitwise_as_eager_ones(name):
    eager, _ = train(CASES[name], 'cpu')
    graphs = RerunGraphs()
    captured, weighting = train(CASES[name], 'cpu', graphs=graphs)
    assert_bitwise(eager, captured)
    # Captured once (forward and backward), replayed on every call: the
    # comparison is not between two eager runs.
    assert graphs.captures == 2 and graphs.replays == 2 * 6
    assert weighting._captured_calls.call is not None


def test_only_the_first_signature_is_captured_and_the_rest_run_eagerly():
    """Batches of 8 and 5 images in turn: the 8-image call is captured and
    replayed, the 5-image calls run eagerly (a second capture would meet
    the last step's live autograd graph), all bitwise as eager training."""
    case = CASES['default, 4 terms x 8 images']
    eager, _ = train(case, 'cpu', images=[8, 5], steps=6)
    graphs = RerunGraphs()
    captured, weighting = train(case, 'cpu', graphs=graphs, images=[8, 5],
                                steps=6)
    assert_bitwise(eager, captured)
    assert weighting._captured_calls.call is not None
    # forward and backward captured once; three 8-image steps replayed
    assert graphs.captures == 2 and graphs.replays == 2 * 3


def test_accumulation_a_skipped_step_and_autocast_stay_bitwise():
    """Two backward passes per step accumulate into ``.grad`` (a gradient
    the backward replay handed out must not be overwritten by the next
    one); a step with a NaN term is dropped with the buffers restored from
    the captured copies, and the last diagnostics kept; and calls under
    CPU autocast (bfloat16) are captured with its cache off."""
    case = dict(CASES['default, 4 terms x 8 images'], nonfinite='skip')
    for kwargs, replays in ((dict(accumulate=2), 2 * 12),
                            (dict(nan_at=2), 6 + 5),
                            (dict(autocast=True), 2 * 6)):  # bfloat16
        eager, _ = train(case, 'cpu', **kwargs)
        graphs = RerunGraphs()
        captured, _ = train(case, 'cpu', graphs=graphs, **kwargs)
        assert_bitwise(eager, captured)
        # every call replayed; the dropped call has no backward replay
        assert graphs.replays == replays


@pytest.mark.parametrize('name', ['default, 4 terms x 8 images',
                                  'one p_hat per batch',
                                  'Algorithm 1, Gumbel K=4, KL guard'])
def test_what_a_call_hands_out_outlives_the_next_replay(name):
    """Weights (an expanded view with one p_hat per batch), objective terms
    and diagnostics of a call stay as they were when the next call replays
    over the captured memory."""
    case = dict(CASES[name])
    images = case.pop('images')
    weighting = MODELS.build(dict(type='SLFWeighting', cuda_graph=True,
                                  **case))
    weighting._captured_calls.graphs = graphs = RerunGraphs()
    handed_out = []
    for scale in (1.0, 3.0, 0.5):
        raw = torch.rand(images, 4).add(0.1).mul(scale).requires_grad_()
        weights, objective = weighting.weigh(raw)
        _, diagnostics = weighting.diagnostic_vector
        outputs = [weights, diagnostics, *objective.values()]
        handed_out.append((outputs, [t.detach().clone() for t in outputs]))
        ((weights * raw).sum() + sum(objective.values())).backward()
    assert graphs.replays == 2 * 3
    for outputs, copies in handed_out:
        assert all(torch.equal(a, b) for a, b in zip(outputs, copies))


def test_gradients_a_backward_replay_hands_out_outlive_the_next_one():
    """``torch.autograd.grad`` hands out the gradients the backward replay
    returns as they are (only accumulation into ``.grad`` copies them):
    those of the terms and the parameters for each of three calls stay
    bitwise the eager ones after the later calls' backward replays."""
    def run(graphs):
        torch.manual_seed(0)
        weighting = MODELS.build(dict(
            type='SLFWeighting', terms=['cls', 'box'],
            decision_objective='joint', estimator='gumbel',
            cuda_graph=graphs is not None))
        if graphs is not None:
            weighting._captured_calls.graphs = graphs
        weighting.diagnostics_logged_by_hook = True
        handed_out = []
        for scale in (1.0, 3.0, 0.5):
            raw = torch.tensor([1.0, 2.0]).mul(scale).requires_grad_()
            out = weighting(dict(loss_cls=raw[0], loss_box=raw[1]))
            total = sum(v for k, v in out.items() if 'loss' in k)
            handed_out += torch.autograd.grad(
                total, [raw, *weighting.parameters()])
        return handed_out

    graphs = RerunGraphs()
    assert_bitwise(run(None), run(graphs))
    assert graphs.replays == 2 * 3


def test_a_call_runs_eagerly_where_a_graph_cannot_serve_it():
    graphs = RerunGraphs()
    weighting = MODELS.build(
        dict(type='SLFWeighting', terms=['cls', 'box'], cuda_graph=True))
    weighting._captured_calls.graphs = graphs
    losses = dict(loss_cls=torch.tensor(1.0, requires_grad=True),
                  loss_box=torch.tensor(2.0, requires_grad=True))
    weighting.eval()
    weighting(losses)
    weighting.train()
    with torch.no_grad():
        weighting(losses)
    assert graphs.captures == 0 and weighting._captured_calls.call is None
    # the CUDA default does not capture CPU terms
    weighting._captured_calls.graphs = CUDAGraphs()
    weighting(losses)
    assert weighting._captured_calls.call is None


def test_a_moved_weighting_is_captured_again_and_copies_capture_their_own():
    graphs = RerunGraphs()
    weighting = MODELS.build(
        dict(type='SLFWeighting', terms=['cls', 'box'], cuda_graph=True))
    weighting._captured_calls.graphs = graphs

    def call(dtype):
        raw = torch.tensor([1.0, 2.0], dtype=dtype, requires_grad=True)
        out = weighting(dict(loss_cls=raw[0], loss_box=raw[1]))
        sum(v for k, v in out.items() if 'loss' in k).backward()

    call(torch.float32)
    first = weighting._captured_calls.call
    assert first is not None
    weighting.float()  # moves nothing: the graphs stay
    assert weighting._captured_calls.call is first
    weighting.double()
    call(torch.float64)
    # float64 terms are another signature, captured because .double()
    # dropped the float32 graphs
    second = weighting._captured_calls.call
    assert second is not None and second is not first
    assert graphs.captures == 4
    copied = copy.deepcopy(weighting)
    assert copied.cuda_graph and copied._captured_calls.call is None
    assert weighting._captured_calls.call is not None


def test_calls_before_one_backward_pass_replay_once_and_run_eagerly_after():
    """SLFLoss in a head that calls its loss once per feature level: five
    calls of the same shapes before one backward pass. The backward graph
    reads the activations of the last replay, so only the first call
    replays and the others run eagerly; training stays bitwise eager."""
    def levels(graphs):
        torch.manual_seed(0)
        weighting = MODELS.build(
            dict(type='SLFWeighting', terms=['iou', 'giou'], scale=1.0,
                 decision_objective='joint', estimator='gumbel',
                 cuda_graph=graphs is not None))
        if graphs is not None:
            weighting._captured_calls.graphs = graphs
        theta = torch.nn.Parameter(torch.tensor([0.3, -0.2]))
        records = []
        for step in range(3):
            total = 0
            for level in range(5):
                raw = (theta * (level + 1)).exp()
                weights, extra = weighting.weigh(raw)
                total = total + (weights * raw).sum() + sum(extra.values())
            total.backward()
            records += [total.detach().clone(), theta.grad.clone()]
            records += [p.grad.clone() for p in weighting.parameters()]
            theta.grad = None
            weighting.zero_grad()
        return records

    graphs = RerunGraphs()
    assert_bitwise(levels(None), levels(graphs))
    assert graphs.replays == 2 * 3  # one call per step, forward + backward


def test_a_backward_after_a_later_replay_is_refused():
    """Running an earlier replay's backward again (retain_graph) after a
    later replay would compute it from the later call's activations."""
    weighting = MODELS.build(
        dict(type='SLFWeighting', terms=['cls', 'box'], cuda_graph=True))
    weighting._captured_calls.graphs = RerunGraphs()
    raw = torch.tensor([1.0, 2.0], requires_grad=True)
    first = weighting(dict(loss_cls=raw[0], loss_box=raw[1]))
    first['loss_slf_decision'].backward(retain_graph=True)
    second = weighting(dict(loss_cls=raw[0] * 2, loss_box=raw[1]))
    second['loss_slf_decision'].backward()
    with pytest.raises(RuntimeError, match='replayed again before the '
                       'backward pass of an earlier replay'):
        first['loss_slf_decision'].backward()


def test_a_second_backward_of_one_replay_is_refused():
    """The backward graph is captured without retain_graph, so the memory
    of the activations it reads is reused within the capture: a second
    backward pass of the same replay would read overwritten values on a
    GPU (the stand-in would rerun the call and not show it)."""
    weighting = MODELS.build(
        dict(type='SLFWeighting', terms=['cls', 'box'], cuda_graph=True))
    weighting._captured_calls.graphs = RerunGraphs()
    raw = torch.tensor([1.0, 2.0], requires_grad=True)
    out = weighting(dict(loss_cls=raw[0], loss_box=raw[1]))  # captured
    assert weighting._captured_calls.graphs.replays == 1  # and replayed
    out['loss_slf_decision'].backward(retain_graph=True)
    with pytest.raises(RuntimeError, match='ran twice for one call'):
        out['loss_slf_decision'].backward()


def test_a_frozen_decision_network_reading_features_with_gradient():
    """With the decision network frozen, no output of the call carries
    gradient (the features are detached inside it), so the replay runs
    outside the autograd function, with grad mode on; it copies the
    features, which require grad, into its static input, a leaf that
    requires grad, which autograd refuses to write in place unless the copy
    runs without grad mode. The replayed calls equal the eager ones."""
    def run(graphs):
        torch.manual_seed(0)
        weighting = MODELS.build(dict(
            type='SLFWeighting', terms=TERMS4, in_channels=3,
            cuda_graph=graphs is not None))
        if graphs is not None:
            weighting._captured_calls.graphs = graphs
        weighting.decision_net.requires_grad_(False)
        weighting.diagnostics_logged_by_hook = True
        weighting.train()
        record = []
        for step in range(3):
            features = torch.linspace(-1, 1, 12).view(4, 3).mul(
                step + 1).requires_grad_(True)
            record += weighted_step(weighting, step, features)
        return record

    graphs = RerunGraphs()
    assert_bitwise(run(graphs), run(None))
    assert graphs.replays >= 1


def test_a_call_without_gradient_outputs_does_not_hold_the_next_one():
    """With the decision network frozen (and the features detached inside
    the call) no output carries gradient, so no backward pass follows a
    replay and none is waited for: three calls are three forward replays
    of one capture (no backward graph), not one replay and two eager
    calls. Each replay reads its own features (random ones: the
    LayerNorm of the decision network would hide a change of scale or
    shift) and gives the eager call's weights bitwise."""
    def run(graphs):
        torch.manual_seed(0)
        weighting = MODELS.build(dict(
            type='SLFWeighting', terms=TERMS4, in_channels=3,
            cuda_graph=graphs is not None))
        if graphs is not None:
            weighting._captured_calls.graphs = graphs
        # a trained network: the initial one gives the prior whatever
        # the features
        torch.nn.init.normal_(weighting.decision_net.fc_out.weight)
        weighting.decision_net.requires_grad_(False)
        weighting.diagnostics_logged_by_hook = True
        record = []
        for step in range(3):
            generator = torch.Generator().manual_seed(step)
            features = torch.randn(4, 3, generator=generator)
            raw = torch.linspace(1, 2, 16).view(4, 4).requires_grad_(True)
            weights, _ = weighting.weigh(raw, features.requires_grad_(True))
            (weights * raw).sum().backward()
            record += [weights.detach().clone(), raw.grad.clone()]
        return record, weighting

    eager, _ = run(None)
    graphs = RerunGraphs()
    captured, weighting = run(graphs)
    assert_bitwise(eager, captured)
    # the features matter: the three steps' weights differ
    assert not torch.equal(eager[0], eager[2])
    assert not torch.equal(eager[2], eager[4])
    assert weighting._captured_calls.call.backward_graph is None
    assert graphs.captures == 1 and graphs.replays == 3


def test_a_partly_frozen_decision_network_trains_bitwise_as_eager():
    """Parameters frozen before the capture (the decision network's
    LayerNorm here) are not differentiated: the backward graph computes the
    gradients of the other four tensors only, the frozen ones keep no
    gradient, and every step equals the eager one."""
    def run(graphs):
        torch.manual_seed(0)
        weighting = MODELS.build(dict(
            type='SLFWeighting', terms=TERMS4, in_channels=3,
            decision_objective='joint', estimator='gumbel',
            cuda_graph=graphs is not None))
        if graphs is not None:
            weighting._captured_calls.graphs = graphs
        weighting.decision_net.norm.requires_grad_(False)
        weighting.diagnostics_logged_by_hook = True
        weighting.train()
        record = []
        for step in range(3):
            features = torch.linspace(-1, 1, 12).view(4, 3).mul(step + 1)
            record += weighted_step(weighting, step, features)
            record += [p.grad.clone() for p in weighting.parameters()
                       if p.requires_grad]
            assert all(p.grad is None
                       for p in weighting.decision_net.norm.parameters())
            weighting.zero_grad()
        return record

    graphs = RerunGraphs()
    assert_bitwise(run(None), run(graphs))
    assert graphs.captures == 2 and graphs.replays == 2 * 3


def test_warm_up_runs_twice_on_the_side_stream_and_backward_shares_the_pool():
    """Before the capture, two eager warm-up calls run on the side stream
    (lazy initialisation must not fall into the capture); the capture and
    the replay run on the current stream. The backward graph is captured
    into the forward graph's memory pool, the forward one into its own."""

    class RecordingGraphs(RerunGraphs):

        def __init__(self):
            super().__init__()
            self.on_side_stream = False
            self.pools = []

        @contextlib.contextmanager
        def side_stream(self, device):
            self.on_side_stream = True
            try:
                yield
            finally:
                self.on_side_stream = False

        def pool(self, graph):
            return ('pool of', id(graph))

        def capture(self, graph, fn, pool=None):
            self.pools.append(pool)
            return super().capture(graph, fn, pool)

    weighting = MODELS.build(
        dict(type='SLFWeighting', terms=['cls', 'box'], cuda_graph=True))
    weighting._captured_calls.graphs = graphs = RecordingGraphs()
    issue, on_side_stream = weighting._issue, []

    def recorded_issue(raw, features):
        on_side_stream.append(graphs.on_side_stream)
        return issue(raw, features)

    weighting._issue = recorded_issue
    raw = torch.tensor([1.0, 2.0], requires_grad=True)
    out = weighting(dict(loss_cls=raw[0], loss_box=raw[1]))
    sum(v for k, v in out.items() if 'loss' in k).backward()
    # two warm-up calls, the capture, the replay
    assert on_side_stream == [True, True, False, False]
    forward = weighting._captured_calls.call.forward_graph
    assert graphs.pools == [None, ('pool of', id(forward))]


@pytest.mark.parametrize('switch', ['feature gradient', 'autocast'])
def test_a_call_that_switches_feature_gradient_or_autocast_runs_eagerly(
        switch):
    """Whether the features require grad, and whether autocast is on, are
    part of the captured signature: on every other step the call differs
    from the captured one in one of them and runs eagerly (a replay would
    return no feature gradient, or compute in the other precision). Both
    kinds of step train bitwise as without graphs."""
    def run(graphs):
        torch.manual_seed(0)
        weighting = MODELS.build(dict(
            type='SLFWeighting', terms=TERMS4, in_channels=3,
            decision_objective='joint', estimator='gumbel',
            detach_features=False, cuda_graph=graphs is not None))
        if graphs is not None:
            weighting._captured_calls.graphs = graphs
        weighting.diagnostics_logged_by_hook = True
        weighting.train()
        record = []
        for step in range(4):
            other = step % 2 == 1
            features = torch.linspace(-1, 1, 12).view(4, 3).mul(step + 1)
            features.requires_grad_(switch != 'feature gradient' or not other)
            record += weighted_step(
                weighting, step, features,
                autocast=switch == 'autocast' and other)
            if features.requires_grad:
                record.append(features.grad.clone())
            record += [p.grad.clone() for p in weighting.parameters()]
            weighting.zero_grad()
        return record

    graphs = RerunGraphs()
    assert_bitwise(run(None), run(graphs))
    # captured at step 0 (forward and backward), replayed at steps 0 and 2
    assert graphs.captures == 2 and graphs.replays == 2 * 2


def test_capture_and_replay_run_on_the_weightings_device():
    """A capture runs on a stream of the current device and a replay is
    launched on the current stream: both run with the weighting's device
    current (on a GPU: a weighting on cuda:1 while cuda:0 is current)."""
    graphs = RerunGraphs()
    weighting = MODELS.build(
        dict(type='SLFWeighting', terms=['cls', 'box'], cuda_graph=True))
    weighting._captured_calls.graphs = graphs
    for _ in range(2):
        raw = torch.tensor([1.0, 2.0], requires_grad=True)
        out = weighting(dict(loss_cls=raw[0], loss_box=raw[1]))
        sum(v for k, v in out.items() if 'loss' in k).backward()
    assert graphs.captures == 2 and graphs.replays == 2 * 2
    assert graphs.devices == [torch.device('cpu')] * (2 + 2 * 2)


def test_tensors_replaced_behind_the_weightings_back_run_eagerly():
    """``param.data = ...`` (or a DataParallel replica) replaces a tensor
    where no hook sees it; the graphs would still read and write the
    captured one. The next call finds it, warns once, and it and the later
    calls run eagerly and train the new tensors."""
    graphs = RerunGraphs()
    weighting = MODELS.build(
        dict(type='SLFWeighting', terms=['cls', 'box'], cuda_graph=True))
    weighting._captured_calls.graphs = graphs

    def step():
        raw = torch.tensor([1.0, 2.0], requires_grad=True)
        out = weighting(dict(loss_cls=raw[0], loss_box=raw[1]))
        sum(v for k, v in out.items() if 'loss' in k).backward()

    step()
    step()
    assert graphs.replays == 2 * 2
    for param in weighting.parameters():
        param.data = param.data.clone()
    weighting.zero_grad(set_to_none=True)
    with pytest.warns(UserWarning, match='not the tensors its CUDA graphs '
                      'captured'):
        step()
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        step()  # warned once
    assert graphs.replays == 2 * 2
    assert all(p.grad is not None for p in weighting.parameters())


def test_errors_of_the_call_itself_are_not_reported_as_capture_failures():
    weighting = MODELS.build(
        dict(type='SLFWeighting', terms=['cls', 'box'], in_channels=6,
             cuda_graph=True))
    weighting._captured_calls.graphs = RerunGraphs()
    raw = torch.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match='needs decision features'):
        weighting(dict(loss_cls=raw[0], loss_box=raw[1]))


def test_loading_a_state_dict_by_assignment_drops_the_graphs():
    """load_state_dict(assign=True) puts new parameters in place of the
    captured ones: the graphs are dropped, and the new parameters get
    their gradients (as without graphs); a load that copies keeps them."""
    weighting = MODELS.build(
        dict(type='SLFWeighting', terms=['cls', 'box'], cuda_graph=True))
    weighting._captured_calls.graphs = RerunGraphs()

    def step():
        raw = torch.tensor([1.0, 2.0], requires_grad=True)
        out = weighting(dict(loss_cls=raw[0], loss_box=raw[1]))
        sum(v for k, v in out.items() if 'loss' in k).backward()

    step()
    state = {k: v.clone() for k, v in weighting.state_dict().items()}
    weighting.load_state_dict(state)
    assert weighting._captured_calls.call is not None
    weighting.load_state_dict(state, assign=True)
    assert weighting._captured_calls.call is None
    weighting.zero_grad(set_to_none=True)
    step()
    assert all(p.grad is not None for p in weighting.parameters())


def test_a_failed_capture_is_an_error_that_names_the_way_out():

    class FailingGraphs(RerunGraphs):

        def capture(self, graph, fn, pool=None):
            raise RuntimeError('operation not permitted when stream is '
                               'capturing')

    weighting = MODELS.build(
        dict(type='SLFWeighting', terms=['cls', 'box'], cuda_graph=True))
    weighting._captured_calls.graphs = FailingGraphs()
    before = [b.clone() for b in weighting.state_buffers()]
    raw = torch.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match='capturing a training call as a '
                       'CUDA graph failed .*not permitted.*cuda_graph=False'):
        weighting(dict(loss_cls=raw[0], loss_box=raw[1]))
    # the warm-up calls are undone
    assert all(torch.equal(b, a)
               for b, a in zip(weighting.state_buffers(), before))


def test_cuda_graph_must_be_a_bool():
    with pytest.raises(ValueError, match='cuda_graph must be True or False'):
        CapturedCalls('yes')
    with pytest.raises(ValueError, match='cuda_graph must be True or False'):
        MODELS.build(dict(type='SLFWeighting', terms=['a'], cuda_graph=1))


@needs_cuda
@pytest.mark.parametrize('name', list(CASES))
def test_cuda_graphs_train_bitwise_as_eager_calls(name):
    eager, _ = train(CASES[name], torch.device('cuda'))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        captured, weighting = train(CASES[name], torch.device('cuda'),
                                    graphs=CUDAGraphs())
    assert_bitwise(eager, captured)
    assert weighting._captured_calls.call is not None
    # no stream synchronisation for gradient accumulators left on the
    # capture stream, and no fallback to eager calls
    assert not [w for w in caught if 'stream' in str(w.message)
                or 'CUDA graph' in str(w.message)], caught


@needs_cuda
@pytest.mark.parametrize('kwargs', [
    dict(images=[8, 5]),
    dict(accumulate=2),
    dict(nan_at=2),
    dict(autocast=True),
], ids=['batch sizes', 'accumulation', 'skipped step', 'autocast float16'])
def test_cuda_graphs_stay_bitwise_across_batches_skips_and_autocast(kwargs):
    case = dict(CASES['default, 4 terms x 8 images'], nonfinite='skip')
    device = torch.device('cuda')
    eager, _ = train(case, device, **kwargs)
    captured, weighting = train(case, device, graphs=CUDAGraphs(), **kwargs)
    assert_bitwise(eager, captured)
    call = weighting._captured_calls.call
    assert call.replays >= 3  # not an eager run compared with itself


@needs_cuda
def test_a_captured_call_dispatches_far_fewer_host_operators():
    from mmdet_slf.utils.profiling import count_operators
    device = torch.device('cuda')
    counts = {}
    for enabled in (False, True):
        weighting = MODELS.build(
            dict(type='SLFWeighting', terms=['cls', 'box'],
                 cuda_graph=enabled)).to(device).train()
        weighting.diagnostics_logged_by_hook = True
        theta = torch.nn.Parameter(torch.ones(2, device=device))

        def step():
            raw = theta.exp()
            out = weighting(dict(loss_cls=raw[0], loss_box=raw[1]))
            sum(v for k, v in out.items() if 'loss' in k).backward()

        for _ in range(3):
            step()  # captures
        counts[enabled] = sum(count_operators(step).values())
    print('host operators per call, eager / captured:', counts)
    assert counts[True] * 3 < counts[False]
