# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""A NaN or Inf in one raw loss term: raise naming the term (default), or
skip the whole optimizer step with a warning naming it."""
import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.runner import Runner
from reliability_helpers import (SnapshotHook, find_hook, read_log,
                                 tiny_yolo_cfg, weighting_of)
from torch import nn

from mmdet_slf.engine.optimizers import SkipNonFiniteOptimWrapper
from mmdet_slf.engine.checks import check_nonfinite_skip

BAD_ITER = 1  # after one real step, so momentum buffers are non-zero


def yolo_runner(data_root, work_dir, max_iters, nonfinite=None, wrapper=None,
                inject=None, snapshot_iters=()):
    cfg = tiny_yolo_cfg(data_root, work_dir, max_iters)
    if nonfinite is not None:
        cfg.model.bbox_head.weighting.nonfinite = nonfinite
    if wrapper is not None:
        cfg.optim_wrapper.type = wrapper
    # Weight decay on every parameter, the decision network's included.
    cfg.optim_wrapper.pop('paramwise_cfg', None)
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.momentum > 0 and optimizer.weight_decay > 0
    hooks = list(cfg.custom_hooks)
    if inject is not None:
        hooks.append(dict(type='InjectNonFiniteHook', **inject))
    hooks.append(dict(type='SnapshotHook', iters=list(snapshot_iters)))
    cfg.custom_hooks = hooks
    return Runner.from_cfg(cfg)


@pytest.mark.parametrize('value', [float('nan'), float('inf')])
def test_default_raises_naming_the_term(tiny_voc_root, tmp_path, value):
    runner = yolo_runner(
        tiny_voc_root, str(tmp_path), 3,
        inject=dict(term='obj', iters=[BAD_ITER], value=value))
    assert weighting_of(runner.model).nonfinite == 'raise'
    with pytest.raises(FloatingPointError,
                       match=r"non-finite raw loss term\(s\) \['obj'\].*"
                       r'nonfinite="skip"'):
        runner.train()
    assert runner.iter == BAD_ITER  # the first step went through


def test_skip_leaves_params_buffers_and_optimizer_untouched(
        tiny_voc_root, tmp_path):
    work_dir = str(tmp_path)
    runner = yolo_runner(
        tiny_voc_root, work_dir, 3, nonfinite='skip',
        wrapper='SkipNonFiniteOptimWrapper',
        inject=dict(term='coord', iters=[BAD_ITER]),
        snapshot_iters=[BAD_ITER, BAD_ITER + 1])
    runner.train()
    snaps = find_hook(runner, SnapshotHook)
    before, after = snaps.before[BAD_ITER], snaps.after[BAD_ITER]
    # Momentum buffers exist (one real step before), so a plain SGD step on
    # zero gradients would have moved every parameter.
    assert len(before['optim']) > 0
    assert any(v.abs().sum() > 0 for v in before['optim'].values())
    for part in ('model', 'optim'):
        assert before[part].keys() == after[part].keys()
        for key, value in before[part].items():
            assert torch.equal(value, after[part][key]), (part, key)
    decision = [k for k in before['model'] if 'decision_net' in k]
    assert decision, 'the decision network is part of the comparison'
    # The next step trains again: parameters and the schedule move.
    nxt_before, nxt_after = snaps.before[BAD_ITER + 1], \
        snaps.after[BAD_ITER + 1]
    assert not all(
        torch.equal(nxt_before['model'][k], nxt_after['model'][k])
        for k in decision)
    num_updates = 'bbox_head.weighting.num_updates'
    assert int(after['model'][num_updates]) == BAD_ITER  # skip: no advance
    assert int(nxt_after['model'][num_updates]) == BAD_ITER + 1
    assert runner.optim_wrapper.skipped_steps == 1
    assert MessageHub.get_current_instance().get_scalar(
        'train/skipped_steps').current() == 1
    log = read_log(work_dir)
    assert "non-finite raw loss term(s) ['coord'] in SLFWeighting; " \
        'skipping this optimizer step' in log
    assert "skipped optimizer step 1 (non-finite terms ['coord'] of " \
        'bbox_head.weighting)' in log


def test_skip_without_the_wrapper_still_steps(tiny_voc_root, tmp_path):
    """Why the wrapper exists: with a plain OptimWrapper the weighting can
    only drop its terms, and SGD's momentum still moves the parameters."""
    work_dir = str(tmp_path)
    runner = yolo_runner(
        tiny_voc_root, work_dir, 2, nonfinite='skip',
        inject=dict(term='coord', iters=[BAD_ITER]),
        snapshot_iters=[BAD_ITER])
    runner.train()
    snaps = find_hook(runner, SnapshotHook)
    before, after = snaps.before[BAD_ITER], snaps.after[BAD_ITER]
    moved = [k for k, v in before['model'].items() if v.is_floating_point()
             and not torch.equal(v, after['model'][k])]
    assert any('decision_net' in k for k in moved)
    assert 'The optimizer still steps' in read_log(work_dir)
    with pytest.raises(ValueError, match='SkipNonFiniteOptimWrapper'):
        check_nonfinite_skip(runner.cfg)


@pytest.mark.parametrize('wrapper', [
    'SkipNonFiniteOptimWrapper', 'mmdet.SkipNonFiniteOptimWrapper',
    SkipNonFiniteOptimWrapper
])
def test_check_accepts_every_spelling_of_the_skipping_wrapper(wrapper):
    """The wrapper's type as mmengine builds it: its name, with the registry
    scope, or the class itself."""
    from mmengine.config import Config
    cfg = Config(dict(
        model=dict(bbox_head=dict(weighting=dict(nonfinite='skip'))),
        optim_wrapper=dict(type=wrapper)))
    check_nonfinite_skip(cfg)  # no error
    cfg.optim_wrapper.type = 'OptimWrapper'
    with pytest.raises(ValueError,
                       match=r'model.bbox_head.weighting.nonfinite="skip" '
                       r'needs optim_wrapper.type="SkipNonFiniteOptimWrapper"'
                       r'.*got "OptimWrapper". Set --cfg-options'):
        check_nonfinite_skip(cfg)
    # tools/train.py --amp sets AmpOptimWrapper over any --cfg-options: the
    # fix is to drop --amp, not to set the wrapper
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    with pytest.raises(ValueError) as error:
        check_nonfinite_skip(cfg)
    assert str(error.value) == (
        'model.bbox_head.weighting.nonfinite="skip" needs optim_wrapper.type='
        '"SkipNonFiniteOptimWrapper", and mixed precision (--amp, '
        'optim_wrapper.type="AmpOptimWrapper") cannot skip steps: train '
        'without --amp, or use nonfinite="raise".')


def test_too_many_consecutive_skips_raise(tiny_voc_root, tmp_path):
    cfg = tiny_yolo_cfg(tiny_voc_root, str(tmp_path), 4)
    cfg.model.bbox_head.weighting.nonfinite = 'skip'
    cfg.optim_wrapper.type = 'SkipNonFiniteOptimWrapper'
    cfg.optim_wrapper.max_consecutive_skips = 2
    cfg.custom_hooks = list(cfg.custom_hooks) + [
        dict(type='InjectNonFiniteHook', term='noobj', iters=[1, 2, 3])]
    runner = Runner.from_cfg(cfg)
    with pytest.raises(FloatingPointError,
                       match=r"2 optimizer steps in a row were skipped "
                       r"\(last: non-finite terms \['noobj'\] of "
                       r'bbox_head.weighting\)'
                       r'.*Lower the learning rate'):
        runner.train()
    assert runner.optim_wrapper.skipped_steps == 2


def test_wrapper_skips_a_nonfinite_total_loss():
    """The wrapper alone: a NaN total loss (from a term no weighting sees)
    leaves parameters and SGD state as they were; a finite one steps."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    wrapper = SkipNonFiniteOptimWrapper(
        optimizer=torch.optim.SGD(
            model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1))
    inputs = torch.randn(5, 3)

    def step(scale):
        with wrapper.optim_context(model):
            loss = model(inputs).square().mean() * scale
        wrapper.update_params(loss)

    step(1.0)
    params = [p.detach().clone() for p in model.parameters()]
    buffers = [b.clone() for b in model.buffers()]
    momentum = [wrapper.optimizer.state[p]['momentum_buffer'].clone()
                for p in model.parameters()]
    step(float('nan'))
    assert wrapper.skipped_steps == 1
    for old, new in zip(params + buffers, list(model.parameters()) +
                        list(model.buffers())):
        assert torch.equal(old, new)
    for old, p in zip(momentum, model.parameters()):
        assert torch.equal(old, wrapper.optimizer.state[p]['momentum_buffer'])
        assert p.grad is None  # cleared, nothing carried into the next step
    step(1.0)
    assert wrapper.consecutive_skips == 0
    assert not torch.equal(params[0], next(model.parameters()))


def test_a_skipped_accumulation_window_restores_its_start():
    """accumulative_counts=2: a window of a finite micro-batch then a NaN
    one is skipped whole, and the BatchNorm statistics go back to where the
    window began, not to before its second forward."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    wrapper = SkipNonFiniteOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        accumulative_counts=2)
    inputs = torch.randn(5, 3)

    def step(scale):
        with wrapper.optim_context(model):
            loss = model(inputs * scale).square().mean() * scale
        wrapper.update_params(loss)

    step(1.0)
    step(1.0)  # one whole window
    params = [p.detach().clone() for p in model.parameters()]
    buffers = [b.clone() for b in model.buffers()]
    step(2.0)
    step(float('nan'))
    assert wrapper.skipped_steps == 1
    for old, new in zip(params + buffers, list(model.parameters()) +
                        list(model.buffers())):
        assert torch.equal(old, new)
    assert int(model[1].num_batches_tracked) == 2


def test_no_buffer_restore_is_refused_with_several_ranks(monkeypatch):
    import mmdet_slf.engine.optimizers.skip_nonfinite_optim_wrapper as module
    monkeypatch.setattr(module, 'get_world_size', lambda: 2)
    optimizer = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r'restore_buffers=False in a '
                       r'distributed run: after a skipped step the ranks\' '
                       'weighting states would part'):
        SkipNonFiniteOptimWrapper(optimizer=optimizer, restore_buffers=False)
    SkipNonFiniteOptimWrapper(optimizer=optimizer)  # the default is fine


def test_skip_counters_survive_a_checkpoint():
    """A resumed run goes on counting skipped steps: the counters are in
    the wrapper's state dict, which a plain optimizer still loads."""
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    inputs = torch.randn(4, 3)

    def wrapper_of(model):
        return SkipNonFiniteOptimWrapper(optimizer=torch.optim.SGD(
            model.parameters(), lr=0.1, momentum=0.9))

    def step(wrapper, scale):
        with wrapper.optim_context(model):
            loss = model(inputs).square().mean() * scale
        wrapper.update_params(loss)

    first = wrapper_of(model)
    for scale in (1.0, float('nan'), 1.0, float('nan'), float('nan')):
        step(first, scale)
    assert (first.skipped_steps, first.consecutive_skips) == (3, 2)
    state = first.state_dict()
    resumed = wrapper_of(model)
    resumed.load_state_dict(state)
    assert (resumed.skipped_steps, resumed.consecutive_skips) == (3, 2)
    torch.testing.assert_close(
        resumed.state_dict()['state'][0]['momentum_buffer'],
        state['state'][0]['momentum_buffer'])
    step(resumed, float('nan'))
    assert (resumed.skipped_steps, resumed.consecutive_skips) == (4, 3)
    assert MessageHub.get_current_instance().get_scalar(
        'train/skipped_steps').current() == 4
    # Other optimizers' state dicts load into it, and its into them.
    torch.optim.SGD(model.parameters(), lr=0.1,
                    momentum=0.9).load_state_dict(state)
    fresh = wrapper_of(model)
    fresh.load_state_dict(torch.optim.SGD(model.parameters(),
                                          lr=0.1).state_dict())
    assert (fresh.skipped_steps, fresh.consecutive_skips) == (0, 0)


def test_max_consecutive_skips_is_checked():
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match='max_consecutive_skips must be an '
                       'int >= 0, got -1'):
        SkipNonFiniteOptimWrapper(optimizer=optimizer,
                                  max_consecutive_skips=-1)


def test_nested_slf_loss_skips_through_the_wrapper():
    """An ``SLFLoss`` inside a model (how other detectors use SLF): a NaN
    target skips the step and the reason names the nested weighting."""
    import mmdet_slf  # noqa: F401
    from mmdet.registry import MODELS

    class Regressor(nn.Module):

        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)
            self.loss_reg = MODELS.build(dict(
                type='SLFLoss',
                candidates=[dict(type='L1Loss'), dict(type='MSELoss')],
                weighting=dict(type='SLFWeighting', scale=1.0,
                               nonfinite='skip')))

    torch.manual_seed(0)
    model = Regressor()
    wrapper = SkipNonFiniteOptimWrapper(optimizer=torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1))
    inputs, target = torch.randn(4, 3), torch.randn(4, 2)

    def step(target):
        with wrapper.optim_context(model):
            loss = model.loss_reg(model.fc(inputs), target)
        wrapper.update_params(loss)

    step(target)
    params = [p.detach().clone() for p in model.parameters()]
    bad = target.clone()
    bad[0, 0] = float('nan')
    step(bad)
    assert wrapper.skipped_steps == 1
    for old, new in zip(params, model.parameters()):
        assert torch.equal(old, new)
    assert model.loss_reg.weighting.nonfinite_policy.pending == []  # consumed


def test_max_consecutive_skips_zero_disables_the_limit():
    """``max_consecutive_skips=0`` is documented as no limit: it is
    accepted, and any number of skipped steps in a row does not raise."""
    model = nn.Linear(2, 1)
    wrapper = SkipNonFiniteOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        max_consecutive_skips=0)
    for _ in range(5):
        with wrapper.optim_context(model):
            loss = model(torch.ones(1, 2)).sum() * float('nan')
        wrapper.update_params(loss)
    assert (wrapper.skipped_steps, wrapper.consecutive_skips) == (5, 5)
