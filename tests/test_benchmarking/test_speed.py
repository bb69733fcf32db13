# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""``mmdet_slf.benchmarking.speed`` and ``step_operators``: the input size
read from a config, the steps ``tools/benchmark_fps.py`` times (no autograd
at inference; the runner's host reads and the optimizer wrapper of a
training step) and the loss and profile comparisons, on stub models."""
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.optim import AmpOptimWrapper, OptimWrapper

import mmdet_slf  # noqa: F401  (registers the weightings)
from mmdet_slf.benchmarking import speed, step_operators


def pipeline_cfg(*steps):
    return Config(dict(test_dataloader=dict(dataset=dict(
        pipeline=[dict(type='LoadImageFromFile'), *steps,
                  dict(type='PackDetInputs')]))))


def test_test_resize_hw_turns_mmdet_scale_w_h_into_h_w():
    """mmcv's ``Resize(scale=(w, h))``: 640 wide, 480 high is (480, 640)."""
    assert speed.test_resize_hw(pipeline_cfg(
        dict(type='Resize', scale=(640, 480), keep_ratio=False))) == \
        (480, 640)
    assert speed.test_resize_hw(pipeline_cfg(
        dict(type='FixShapeResize', width=320, height=240))) == (240, 320)
    # the last Resize decides
    assert speed.test_resize_hw(pipeline_cfg(
        dict(type='Resize', scale=(100, 50)),
        dict(type='Resize', scale=(300, 200)))) == (200, 300)
    with pytest.raises(ValueError, match='pass --shape H W'):
        speed.test_resize_hw(pipeline_cfg())


class GradRecorder(torch.nn.Module):

    def __init__(self):
        super().__init__()
        self.grad_enabled = []

    def test_step(self, batch):
        self.grad_enabled.append(torch.is_grad_enabled())


def test_inference_step_records_no_graph():
    model = GradRecorder()
    step = speed.inference_step(model, 'cpu')
    with torch.enable_grad():
        assert step(dict(inputs=[0])) == 1
    assert model.grad_enabled == [False]


class WeightedModel(BaseModel):
    """Two loss terms through a FixedWeighting, as an SLF detector returns
    them, and one optimizer step."""

    def __init__(self):
        super().__init__()
        self.param = torch.nn.Parameter(torch.tensor([0.5, 1.5]))
        self.weighting = MODELS.build(
            dict(type='FixedWeighting', terms=['cls', 'box']))

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    def train_step(self, data, optim_wrapper):
        losses = self.weighting(dict(loss_cls=self.param[0] * 2,
                                     loss_box=self.param[1] * 3))
        loss, log_vars = self.parse_losses(losses)
        optim_wrapper.update_params(loss)
        return log_vars


def training_cfg(hooks):
    return Config(dict(
        optim_wrapper=dict(type='OptimWrapper',
                           optimizer=dict(type='SGD', lr=0.01)),
        custom_hooks=hooks))


def count_reads(monkeypatch, log_reads, hooks):
    """Keys of one step's returned values, and the ``.item()`` and
    ``.tolist()`` calls made after ``train_step`` returned them."""
    model = WeightedModel()
    returned, counts = [], dict(item=0, tolist=0)
    train_step = model.train_step

    def recorded(data, optim_wrapper):
        returned.append(train_step(data, optim_wrapper))
        counts.update(item=0, tolist=0)  # only what follows counts
        return returned[-1]

    model.train_step = recorded
    for name in counts:
        original = getattr(torch.Tensor, name)

        def counted(tensor, _name=name, _original=original):
            counts[_name] += 1
            return _original(tensor)

        monkeypatch.setattr(torch.Tensor, name, counted)
    step = speed.training_step(model, training_cfg(hooks),
                               log_reads=log_reads)
    assert step(dict(inputs=[0, 0, 0])) == 3
    return sorted(returned[-1]), counts


def test_log_reads_read_every_value_and_the_diagnostics_once(monkeypatch):
    """Without SLFLoggerHook the runner reads each returned value, the
    weights among them; with it the weights leave the returned values and
    are read in one copy; without --log-reads nothing is read."""
    keys, counts = count_reads(monkeypatch, True, [])
    assert keys == ['loss', 'loss_box', 'loss_cls', 'slf_raw_box',
                    'slf_raw_cls', 'slf_skipped', 'slf_w_box', 'slf_w_cls']
    assert counts == dict(item=8, tolist=0)
    keys, counts = count_reads(monkeypatch, True,
                               [dict(type='SLFLoggerHook')])
    assert keys == ['loss', 'loss_box', 'loss_cls']
    assert counts == dict(item=3, tolist=1)
    _, counts = count_reads(monkeypatch, False,
                            [dict(type='SLFLoggerHook')])
    assert counts == dict(item=0, tolist=0)


def test_fp16_trains_with_amp_optim_wrapper(monkeypatch):
    """The wrapper built for the step: AmpOptimWrapper with dynamic loss
    scaling under --fp16, the config's own otherwise. (AmpOptimWrapper
    checks for a GPU when built; it is told there is one.)"""
    from mmengine.optim.optimizer import amp_optimizer_wrapper
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available',
                        lambda: True)
    built = []

    def build(model, cfg):
        built.append(original(model, cfg))
        return built[-1]

    original = speed.build_optim_wrapper
    monkeypatch.setattr(speed, 'build_optim_wrapper', build)
    cfg = training_cfg([])
    speed.training_step(WeightedModel(), cfg)
    speed.training_step(WeightedModel(), cfg, fp16=True)
    assert type(built[0]) is OptimWrapper
    assert type(built[1]) is AmpOptimWrapper
    assert built[1]._scale_update_param is None  # 'dynamic'
    assert cfg.optim_wrapper.type == 'OptimWrapper'  # left as it was


class PreprocessorRecorder(torch.nn.Module):

    def __init__(self):
        super().__init__()
        self.training_flags = []

    def forward(self, data, training=False):
        self.training_flags.append(training)
        return data


class LossModel(torch.nn.Module):

    def __init__(self):
        super().__init__()
        self.data_preprocessor = PreprocessorRecorder()

    def _run_forward(self, data, mode):
        assert mode == 'loss'
        return dict(loss=(data['inputs'] * 2).sum())


def test_loss_host_syncs_preprocess_as_in_training():
    """The loss is profiled on a batch preprocessed as the training step
    preprocesses it (``training=True``: batch augments, padded masks)."""
    models = dict(zip('01', (LossModel(), LossModel())))
    result = step_operators.loss_host_syncs(
        models, {key: dict(inputs=torch.ones(3)) for key in models})
    for key, model in models.items():
        assert model.data_preprocessor.training_flags == [True]
        # mul and sum, and no host sync
        assert result[key]['operators'] == 2 and result[key]['syncs'] == []


@pytest.mark.parametrize('device,by', [('cuda', 'self_device_ms'),
                                       ('cpu', 'self_cpu_ms')])
def test_profile_ranks_by_device_time_on_a_gpu(monkeypatch, device, by):
    """On a GPU the differences are ranked by device time, elsewhere by
    host time (a CPU run has no device time)."""
    ranked = []

    def differences(first, second, top, by):
        ranked.append(by)
        return [dict(name='addmm', diff_calls=1.0, **{f'diff_{by}': 0.5})]

    totals = dict(host_op_calls=10.0, device_kernels=4.0, self_cpu_ms=1.0,
                  self_device_ms=2.0)
    monkeypatch.setattr(step_operators, 'profile_calls',
                        lambda step, num_iters, prepare, device: {})
    monkeypatch.setattr(step_operators, 'profile_totals',
                        lambda stats: totals)
    monkeypatch.setattr(step_operators, 'op_differences', differences)
    result = step_operators.profile_models(
        dict.fromkeys('01'), dict.fromkeys('01'), 2, torch.device(device))
    assert result['sorted_by'] == by and ranked == [by]


def test_operator_counts_difference_is_second_minus_first_largest_first(
        monkeypatch, capsys):
    """Model 0 dispatches add 3, mul 1, sum 2 (6); model 1 add 3, mul 4,
    relu 2, sum 1 (10). Second minus first: +4 in all, mul +3, relu +2
    (only in model 1), sum -1, add 0 (left out); with ``top=2`` the printed
    line stops after relu."""
    monkeypatch.setattr(step_operators, 'count_operators', lambda fn: fn())
    counts = {'0': dict(add=3, mul=1, sum=2),
              '1': dict(add=3, mul=4, relu=2, sum=1)}
    steps = {key: lambda batch: counts[batch] for key in counts}
    result = step_operators.operator_counts(
        steps, {key: key for key in counts}, top=2)
    assert result['totals'] == {'0': 6, '1': 10}
    assert result['difference'] == 4
    assert list(result['differences'].items()) == [
        ('mul', 3), ('relu', 2), ('sum', -1)]
    printed = capsys.readouterr().out
    assert 'by operator: mul +3, relu +2\n' in printed


def test_profile_differences_are_second_minus_first_with_the_given_top(
        monkeypatch):
    """``op_differences`` gets model 0's profile as the first, model 1's
    as the second, and the ``top`` asked for (5, not its default 15)."""
    calls = []

    def differences(first, second, top, by):
        calls.append((first, second, top, by))
        return []

    monkeypatch.setattr(step_operators, 'profile_calls',
                        lambda step, num_iters, prepare, device: step)
    monkeypatch.setattr(step_operators, 'profile_totals',
                        lambda stats: dict(host_op_calls=1.0,
                                           device_kernels=0.0,
                                           self_cpu_ms=1.0,
                                           self_device_ms=0.0))
    monkeypatch.setattr(step_operators, 'op_differences', differences)
    step_operators.profile_models(dict(zip('01', ('stats 0', 'stats 1'))),
                                  dict.fromkeys('01'), 2,
                                  torch.device('cpu'), top=5)
    assert calls == [('stats 0', 'stats 1', 5, 'self_cpu_ms')]


def test_copy_shared_weights_skips_names_of_another_shape():
    """Of ``weight`` (2 x 3 vs 4 x 3), ``bias`` (2 vs 2) and ``extra`` (only
    in the source), only ``bias`` is copied: one tensor, and the target's
    weight keeps its own values."""
    source, target = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    target.weight = torch.nn.Parameter(torch.zeros(4, 3))
    source.register_buffer('extra', torch.ones(1))
    kept = target.weight.detach().clone()
    assert speed.copy_shared_weights(source, target) == 1
    assert torch.equal(target.bias, source.bias)
    assert torch.equal(target.weight, kept)


def test_input_streams_take_each_configs_own_size():
    """Without ``--shape`` each model gets images of its own test resize:
    ``scale=(100, 50)`` gives 50 x 100 images, ``scale=(300, 200)``
    200 x 300; a given shape is used for both."""
    cfgs = [pipeline_cfg(dict(type='Resize', scale=(100, 50))),
            pipeline_cfg(dict(type='Resize', scale=(300, 200)))]
    streams, batch_size = speed.input_streams(cfgs)
    assert batch_size == 1
    assert [tuple(next(stream)['inputs'][0].shape) for stream in streams] \
        == [(3, 50, 100), (3, 200, 300)]
    streams, _ = speed.input_streams(cfgs, shape=(16, 24))
    assert [tuple(next(stream)['inputs'][0].shape) for stream in streams] \
        == [(3, 16, 24), (3, 16, 24)]
