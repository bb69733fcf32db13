# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""tools/strip_weighting.py: a trained SLF checkpoint less its weighting
loads strictly into the baseline's model and predicts bitwise what the SLF
model predicts; checkpoints and configs that do not fit are refused."""
import hashlib
import importlib.util
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config

from conftest import REPO_ROOT, fill_disk_on_write, refusal

SLF = osp.join(REPO_ROOT, 'configs', 'demo', 'fast-yolo-slf_digits.py')
FIXED = osp.join(REPO_ROOT, 'configs', 'demo', 'fast-yolo_digits.py')


def load_tool():
    spec = importlib.util.spec_from_file_location(
        'strip_weighting', osp.join(REPO_ROOT, 'tools', 'strip_weighting.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


@pytest.fixture(scope='module')
def tool():
    return load_tool()


@pytest.fixture
def trained(tmp_path, tool):
    """An SLF model whose detector and decision network both moved away
    from their initialisation, saved as the runner saves it."""
    torch.manual_seed(0)
    model = tool.build_model(Config.fromfile(SLF))
    model.init_weights()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.01 * torch.randn_like(param))
    model.bbox_head.weighting.num_updates.fill_(37)
    path = str(tmp_path / 'iter_600.pth')
    torch.save(dict(meta=dict(seed=5, iter=600),
                    state_dict=model.state_dict(),
                    optimizer=dict(state={}, param_groups=[]),
                    message_hub=dict(log_scalars={})), path)
    return model, path


def test_stripped_checkpoint_is_the_baseline_detector(
        tmp_path, tool, trained, capsys):
    model, path = trained
    out = str(tmp_path / 'slf_digits.pth')
    tool.main([SLF, path, out, '--baseline', FIXED])
    saved = torch.load(out, weights_only=True)
    # Only the model weights and meta: resume state is left out.
    assert sorted(saved) == ['meta', 'state_dict']
    full = model.state_dict()
    dropped = sorted(set(full) - set(saved['state_dict']))
    assert dropped == sorted(key for key in full
                             if key.startswith('bbox_head.weighting.'))
    assert 'bbox_head.weighting.decision_net.fc_out.weight' in dropped
    assert saved['meta'] == dict(seed=5, iter=600, weighting_stripped=dict(
        prefixes=['bbox_head.weighting.'], num_keys=len(dropped)))
    for key, value in saved['state_dict'].items():
        assert torch.equal(value, full[key]), key
    printed = capsys.readouterr().out
    with open(out, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert f'{len(full) - len(dropped)} tensors kept, {len(dropped)} of ' \
        f'the weighting dropped (bbox_head.weighting); sha256 {digest}' \
        in printed
    # The baseline loads it strictly and predicts what the SLF model does.
    baseline = tool.build_model(Config.fromfile(FIXED))
    baseline.load_state_dict(saved['state_dict'], strict=True)
    inputs = torch.rand(2, 3, 192, 192)
    model.eval(), baseline.eval()
    with torch.no_grad():
        expected = model(inputs, mode='tensor')
        got = baseline(inputs, mode='tensor')
    expected = expected if isinstance(expected, tuple) else (expected, )
    got = got if isinstance(got, tuple) else (got, )
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert torch.equal(a, b)
    # and the test step (preprocessing, decoding, NMS) gives the same boxes
    from mmdet.structures import DetDataSample
    batch = dict(inputs=[torch.randint(0, 256, (3, 192, 192),
                                       dtype=torch.uint8)],
                 data_samples=[DetDataSample(metainfo=dict(
                     img_shape=(192, 192), ori_shape=(192, 192),
                     scale_factor=(1., 1.)))])
    with torch.no_grad():
        [expected] = model.test_step(batch)
        [got] = baseline.test_step(batch)
    assert len(got.pred_instances) > 0
    for key in ('bboxes', 'scores', 'labels'):
        assert torch.equal(got.pred_instances[key],
                           expected.pred_instances[key]), key


def test_a_checkpoint_of_another_model_is_refused(tmp_path, tool, trained):
    """The baseline's own checkpoint lacks the SLF config's weighting keys:
    which of its keys to drop is not known, so nothing is written."""
    baseline = tool.build_model(Config.fromfile(FIXED))
    path = str(tmp_path / 'fixed.pth')
    torch.save(dict(state_dict=baseline.state_dict()), path)
    out = str(tmp_path / 'out.pth')
    with pytest.raises(SystemExit, match=re.escape(
            f"strip_weighting.py: {path} does not fit the config's model, "
            'so its weighting keys are not known:\n  9 model keys missing '
            'from the checkpoint: bbox_head.weighting.')):
        tool.main([SLF, path, out])
    assert not osp.exists(out)


def test_weights_the_baseline_cannot_load_are_refused(tmp_path, tool,
                                                      trained):
    """A baseline of another head (3 boxes per cell) would load the
    stripped weights non-strictly and leave layers random: refused before
    anything is written, naming the layers. The 1x1 output conv has B * 5
    + C channels: 2 * 5 + 10 = 20 trained, 3 * 5 + 10 = 25 in the other."""
    _, path = trained
    out = str(tmp_path / 'out.pth')
    other = tmp_path / 'other.py'
    other.write_text(f'_base_ = {FIXED!r}\n'
                     'model = dict(bbox_head=dict(num_boxes=3))\n')
    with pytest.raises(SystemExit, match=re.escape(
            f"the stripped weights do not fit {other}'s model; nothing was "
            'written:\n  2 keys of another shape: bbox_head.conv_out.bias '
            '(checkpoint [20] vs model [25]), bbox_head.conv_out.weight '
            '(checkpoint [20, 128, 1, 1] vs model [25, 128, 1, 1])')):
        tool.main([SLF, path, out, '--baseline', str(other)])
    assert not osp.exists(out)


def test_a_model_without_weighting_is_refused(tool):
    from torch import nn
    with pytest.raises(ValueError, match='no loss weighting'):
        tool.strip(dict(state_dict={}), nn.Linear(2, 2), 'x.pth')


def test_the_training_checkpoint_is_never_overwritten(tmp_path, tool,
                                                      capsys, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path))
    path = str(tmp_path / 'iter_600.pth')
    for out in (path, osp.join(str(tmp_path), '.', 'iter_600.pth'),
                '~/iter_600.pth'):
        assert 'is the checkpoint itself' in refusal(
            tool.parse_args, [SLF, path, out], capsys)
    # the checkpoint under HOME as ~/iter_600.pth (which the loader
    # expands) and OUT as its full path are one file too
    assert 'is the checkpoint itself' in refusal(
        tool.parse_args, [SLF, '~/iter_600.pth', path], capsys)


def test_a_missing_checkpoint_next_to_an_existing_out_is_named(tmp_path,
                                                               tool):
    """OUT exists (an earlier stripped file) and the checkpoint does not:
    the missing checkpoint is named, and OUT is left as it was."""
    out = tmp_path / 'out.pth'
    out.write_bytes(b'earlier')
    missing = str(tmp_path / 'nope.pth')
    with pytest.raises(SystemExit, match=re.escape(
            f'strip_weighting.py: checkpoint file {missing} does not '
            'exist')):
        tool.main([SLF, missing, str(out)])
    assert out.read_bytes() == b'earlier'


def test_weightings_of_slf_detector_and_slf_loss(tool):
    """SLFDetector's weighting and an SLFLoss's are found by their
    state-dict prefixes; the decision network inside is not listed."""
    from mmdet.utils import register_all_modules
    from torch import nn

    from mmdet_slf.models.losses import SLFLoss
    from mmdet_slf.slf import SLFWeighting
    register_all_modules(init_default_scope=True)

    class Model(nn.Module):

        def __init__(self):
            super().__init__()
            self.weighting = SLFWeighting(['a', 'b'])
            self.head = nn.Module()
            self.head.loss_cls = SLFLoss(
                [dict(type='L1Loss'), dict(type='MSELoss')], names=['a', 'b'])

    assert tool.weighting_prefixes(Model()) == [
        'weighting.', 'head.loss_cls.weighting.']


def test_a_weighting_held_under_two_names_is_dropped_under_both(tool):
    """``state_dict`` saves a module held twice under both names, and
    ``named_modules`` lists it once: both prefixes must go."""
    from torch import nn

    from mmdet_slf.slf import SLFWeighting

    class Model(nn.Module):

        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)
            self.weighting = SLFWeighting(['a', 'b'])
            self.head = nn.Module()
            self.head.weighting = self.weighting

    model = Model()
    assert tool.weighting_prefixes(model) == ['weighting.', 'head.weighting.']
    state = model.state_dict()
    assert any(key.startswith('head.weighting.') for key in state)
    stripped = tool.strip(dict(state_dict=state), model, 'x.pth')
    assert sorted(stripped['state_dict']) == ['fc.bias', 'fc.weight']


def test_slf_detector_checkpoint_loads_into_mmdets_own_config(
        tmp_path, tool, capsys):
    """SLFDetector over RetinaNet: the stripped weights fit the model of
    mmdet's own config, named as mmdet names it, and nothing but
    ``weighting.*`` is dropped."""
    config = osp.join(REPO_ROOT, 'configs', 'slf_detectors',
                      'retinanet-slf_r50_fpn_1x_voc0712.py')
    model = tool.build_model(Config.fromfile(config))
    path, out = str(tmp_path / 'slf.pth'), str(tmp_path / 'out.pth')
    torch.save(dict(state_dict=model.state_dict()), path)
    tool.main([config, path, out, '--baseline',
               'mmdet::pascal_voc/retinanet_r50_fpn_1x_voc0712.py'])
    kept = torch.load(out, weights_only=True)['state_dict']
    assert sorted(set(model.state_dict()) - set(kept)) == sorted(
        key for key in model.state_dict() if key.startswith('weighting.'))
    assert '(weighting); sha256' in capsys.readouterr().out


def test_missing_or_damaged_inputs_are_named_without_a_traceback(
        tmp_path, tool, trained):
    _, path = trained
    out = str(tmp_path / 'out.pth')
    damaged = tmp_path / 'damaged.pth'
    damaged.write_bytes(b'hello world')
    for argv, message in (
            ([str(tmp_path / 'nope.py'), path, out], 'nope.py'),
            ([SLF, str(tmp_path / 'nope.pth'), out],
             f'checkpoint file {tmp_path}/nope.pth does not exist'),
            ([SLF, str(damaged), out],
             f'cannot read checkpoint {damaged}'),
            ([SLF, path, out, '--baseline', 'mmdet::pascal_voc/nope.py'],
             'pascal_voc/nope.py" does not exist')):
        with pytest.raises(SystemExit) as exit_info:
            tool.main(argv)
        assert str(exit_info.value.code).startswith('strip_weighting.py: ')
        assert message in str(exit_info.value.code)
    assert not osp.exists(out)


def test_both_weightings_of_a_two_slf_loss_head_are_dropped(
        tmp_path, tool, capsys):
    """Faster R-CNN with an SLFLoss for classification and another for
    boxes: without --baseline both weightings go, and what is left is
    mmdet's own Faster R-CNN, key for key."""
    config = osp.join(REPO_ROOT, 'configs', 'losses',
                      'faster-rcnn_r50_fpn_slf-bitempered-iou-balanced_1x_'
                      'voc0712.py')
    model = tool.build_model(Config.fromfile(config))
    path, out = str(tmp_path / 'slf.pth'), str(tmp_path / 'out.pth')
    torch.save(dict(state_dict=model.state_dict()), path)
    tool.main([config, path, out])
    kept = torch.load(out, weights_only=True)['state_dict']
    prefixes = ('roi_head.bbox_head.loss_cls.weighting.',
                'roi_head.bbox_head.loss_bbox.weighting.')
    full = model.state_dict()
    for prefix in prefixes:
        assert any(key.startswith(prefix) for key in full), prefix
    assert sorted(set(full) - set(kept)) == sorted(
        key for key in full if key.startswith(prefixes))
    assert '(roi_head.bbox_head.loss_cls.weighting, ' \
        'roi_head.bbox_head.loss_bbox.weighting)' in capsys.readouterr().out
    baseline = tool.build_model(load_cfg(
        'mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py'))
    assert sorted(kept) == sorted(baseline.state_dict())


def load_cfg(name):
    from mmdet_slf.benchmarking.speed import load_cfg as load
    return load(name, None)


def test_a_data_parallel_checkpoint_loses_its_module_prefix(
        tmp_path, tool, trained):
    """Keys saved from a wrapped model (``module.``) are revised as
    mmengine revises them on load; OUT holds the model's own names."""
    model, _ = trained
    path, out = str(tmp_path / 'ddp.pth'), str(tmp_path / 'out.pth')
    full = model.state_dict()
    torch.save(dict(state_dict={'module.' + key: value
                                for key, value in full.items()}), path)
    tool.main([SLF, path, out, '--baseline', FIXED])
    kept = torch.load(out, weights_only=True)['state_dict']
    assert sorted(kept) == sorted(
        key for key in full if not key.startswith('bbox_head.weighting.'))
    for key, value in kept.items():
        assert torch.equal(value, full[key]), key


def test_a_baseline_with_a_weighting_of_its_own_is_compared_without_it(
        tmp_path, tool, trained, capsys):
    """DWA keeps a loss history: the stripped SLF weights cannot hold it,
    and the DWA config's model loads them with only that state missing,
    which is all the test runner lets pass (it warns)."""
    from mmdet_slf.engine.checkpoint import compare_state_dicts
    from mmdet_slf.engine.hooks.checkpoint_check_hook import \
        only_weighting_state
    _, path = trained
    out = str(tmp_path / 'out.pth')
    dwa = osp.join(REPO_ROOT, 'configs', 'demo', 'benchmark', 'dwa.py')
    tool.main([SLF, path, out, '--baseline', dwa])
    baseline = tool.build_model(Config.fromfile(dwa))
    state = baseline.state_dict()
    own = [key for key in state if key.startswith('bbox_head.weighting.')]
    assert own
    report = compare_state_dicts(
        state, torch.load(out, weights_only=True)['state_dict'])
    assert report['missing'] == sorted(own)
    assert not report['unexpected'] and not report['mismatched']
    assert only_weighting_state(report)
    assert f'{dwa} has a weighting of its own: its {len(own)} keys are ' \
        'not in OUT' in capsys.readouterr().out


@pytest.mark.parametrize('content, message', [
    (torch.zeros(3), '{} holds a Tensor, not a dict of weights: not a '
     'model checkpoint'),
    ([1, 2], '{} holds a list, not a dict of weights: not a model '
     'checkpoint'),
    (dict(state_dict=None), 'the state_dict of {} is a NoneType, not a dict '
     'of named weights'),
    (dict(state_dict=[torch.zeros(1)]), 'the state_dict of {} is a list, '
     'not a dict of named weights'),
    ({0: torch.zeros(1)}, 'the state_dict of {} is a dict, not a dict of '
     'named weights'),
])
def test_files_that_are_no_checkpoint_are_named(tmp_path, tool, content,
                                                message):
    path, out = str(tmp_path / 'odd.pth'), str(tmp_path / 'out.pth')
    torch.save(content, path)
    with pytest.raises(SystemExit) as exit_info:
        tool.main([SLF, path, out])
    assert str(exit_info.value.code) == \
        'strip_weighting.py: ' + message.format(path)
    assert not osp.exists(out)


def test_a_meta_that_is_no_dict_is_refused(tmp_path, tool, trained):
    model, _ = trained
    path, out = str(tmp_path / 'odd.pth'), str(tmp_path / 'out.pth')
    torch.save(dict(meta=[1], state_dict=model.state_dict()), path)
    with pytest.raises(SystemExit, match=re.escape(
            f'{path}: its meta is a list, not a dict')):
        tool.main([SLF, path, out])
    assert not osp.exists(out)


def test_outputs_that_cannot_be_written_are_named(tmp_path, tool, trained,
                                                  capsys, monkeypatch):
    _, path = trained
    # a folder as OUT: refused before anything is read
    assert f'OUT {tmp_path} is a folder' in refusal(
        tool.parse_args, [SLF, path, str(tmp_path)], capsys)
    # a file where OUT's folder should be
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    out = str(blocker / 'out.pth')
    with pytest.raises(SystemExit, match=re.escape(
            f'strip_weighting.py: cannot write {out}: ')):
        tool.main([SLF, path, out])
    # a full disk: an earlier OUT stays whole and no temporary file is left
    out = tmp_path / 'out.pth'
    out.write_bytes(b'earlier')
    temporaries = fill_disk_on_write(monkeypatch)
    with pytest.raises(SystemExit, match='No space left on device'):
        tool.main([SLF, path, str(out)])
    assert out.read_bytes() == b'earlier'
    assert len(temporaries) == 1 and not osp.exists(temporaries[0])


def test_a_link_to_the_checkpoint_is_the_checkpoint(tmp_path, tool, trained,
                                                    capsys):
    _, path = trained
    link = tmp_path / 'link.pth'
    link.symlink_to(path)
    assert 'is the checkpoint itself' in refusal(
        tool.parse_args, [SLF, path, str(link)], capsys)


def test_a_checkpoint_given_as_baseline_is_named(tmp_path, tool, trained):
    _, path = trained
    out = str(tmp_path / 'out.pth')
    with pytest.raises(SystemExit, match='strip_weighting.py: Only '
                       'py/yml/yaml/json type are supported now'):
        tool.main([SLF, path, out, '--baseline', path])
    assert not osp.exists(out)


def test_options_of_the_config_leave_the_baseline_as_it_is(tmp_path, tool):
    """--cfg-options change CONFIG only: a checkpoint of the SLF model with
    3 boxes per cell strips under ``model.bbox_head.num_boxes=3``, and the
    baseline config as it is (2 boxes) is refused: its output conv has
    2 * 5 + 10 = 20 channels, the checkpoint's 3 * 5 + 10 = 25."""
    cfg = Config.fromfile(SLF)
    cfg.merge_from_dict({'model.bbox_head.num_boxes': 3})
    path = str(tmp_path / 'iter_600.pth')
    torch.save(dict(state_dict=tool.build_model(cfg).state_dict()), path)
    out = str(tmp_path / 'out.pth')
    with pytest.raises(SystemExit, match=re.escape(
            f"the stripped weights do not fit {FIXED}'s model; nothing was "
            'written:\n  2 keys of another shape: bbox_head.conv_out.bias '
            '(checkpoint [25] vs model [20])')):
        tool.main([SLF, path, out, '--cfg-options',
                   'model.bbox_head.num_boxes=3', '--baseline', FIXED])
    assert not osp.exists(out)
