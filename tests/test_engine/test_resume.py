# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Train with the Runner, save, resume: counters and optimizer restored."""
import copy
import os.path as osp

import pytest
import torch
from conftest import VOC_CLASSES
from mmengine.config import Config
from mmengine.runner import Runner

import mmdet_slf  # noqa: F401
from mmdet_slf.engine.checkpoint import enable_safe_loading

# A config built in code imports nothing: switch on what the project's
# configs import (custom_imports), or torch refuses mmengine's HistoryBuffer.
enable_safe_loading()

NUM_CLASSES = 3


def tiny_retinanet_cfg(data_root: str, work_dir: str,
                       max_iters: int) -> Config:
    """A small RetinaNet whose classification loss is an SLFLoss, so the
    decision network's parameters live in the checkpoint and optimizer."""
    classes = VOC_CLASSES[:NUM_CLASSES]
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='Resize', scale=(64, 64), keep_ratio=False),
        dict(type='PackDetInputs')
    ]
    dataset = dict(
        type='VOCDataset',
        data_root=data_root,
        ann_file='VOC2007/ImageSets/Main/trainval.txt',
        data_prefix=dict(sub_data_root='VOC2007/'),
        metainfo=dict(classes=classes),
        filter_cfg=dict(filter_empty_gt=True, min_size=1),
        pipeline=pipeline)
    model = dict(
        type='RetinaNet',
        data_preprocessor=dict(
            type='DetDataPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True,
            pad_size_divisor=32),
        backbone=dict(
            type='ResNet', depth=18, base_channels=8, num_stages=4,
            out_indices=(1, 2, 3), norm_cfg=dict(type='BN'), init_cfg=None),
        neck=dict(type='FPN', in_channels=[16, 32, 64], out_channels=16,
                  start_level=0, add_extra_convs='on_input', num_outs=3),
        bbox_head=dict(
            type='RetinaHead',
            num_classes=NUM_CLASSES,
            in_channels=16,
            stacked_convs=1,
            feat_channels=16,
            anchor_generator=dict(
                type='AnchorGenerator', octave_base_scale=4,
                scales_per_octave=1, ratios=[1.0], strides=[8, 16, 32]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder',
                            target_means=[.0, .0, .0, .0],
                            target_stds=[1.0, 1.0, 1.0, 1.0]),
            loss_cls=dict(
                type='SLFLoss',
                use_sigmoid=True,
                candidates=[
                    dict(type='FocalLoss', use_sigmoid=True),
                    dict(type='CrossEntropyLoss', use_sigmoid=True)
                ]),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        train_cfg=dict(
            assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5,
                          neg_iou_thr=0.4, min_pos_iou=0, ignore_iof_thr=-1),
            sampler=dict(type='PseudoSampler'),
            allowed_border=-1, pos_weight=-1, debug=False),
        test_cfg=dict(nms_pre=100, min_bbox_size=0, score_thr=0.05,
                      nms=dict(type='nms', iou_threshold=0.5),
                      max_per_img=10))
    return Config(dict(
        model=model,
        work_dir=work_dir,
        train_dataloader=dict(
            batch_size=2, num_workers=0, persistent_workers=False,
            sampler=dict(type='DefaultSampler', shuffle=True),
            dataset=dataset),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters),
        optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=0.01, momentum=0.9,
                           weight_decay=1e-4)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='SLFLoggerHook')],
        log_processor=dict(by_epoch=False, window_size=1),
        randomness=dict(seed=0),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        default_scope='mmdet'))


def test_train_save_resume_continue(tiny_voc_root, tmp_path):
    work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(tiny_retinanet_cfg(tiny_voc_root, work_dir, 2))
    runner.train()
    checkpoint = osp.join(work_dir, 'iter_2.pth')
    assert osp.isfile(checkpoint)
    saved_state = copy.deepcopy(runner.model.state_dict())
    saved_optim = copy.deepcopy(runner.optim_wrapper.state_dict())
    # The slf diagnostics of the nested SLFLoss reached the message hub.
    logged = runner.message_hub.log_scalars
    assert 'train/bbox_head.cls.slf_w_focal' in logged
    weights = [logged[f'train/bbox_head.cls.slf_w_{name}'].current()
               for name in ('focal', 'crossentropy')]
    assert sum(weights) == pytest.approx(1.0)

    # Resume in a fresh runner: weights-only torch.load must accept it.
    cfg = tiny_retinanet_cfg(tiny_voc_root, work_dir, 4)
    cfg.resume = True
    cfg.load_from = checkpoint
    resumed = Runner.from_cfg(cfg)
    resumed.load_or_resume()
    assert resumed.iter == 2
    restored = resumed.model.state_dict()
    for key, value in saved_state.items():
        torch.testing.assert_close(restored[key], value, msg=key)
    assert any('loss_cls.weighting.decision_net' in key for key in restored)
    optim_state = resumed.optim_wrapper.state_dict()['state']
    assert len(optim_state) == len(saved_optim['state']) > 0
    for index, state in saved_optim['state'].items():
        torch.testing.assert_close(optim_state[index]['momentum_buffer'],
                                   state['momentum_buffer'])
    resumed.train()
    assert resumed.iter == 4
    assert osp.isfile(osp.join(work_dir, 'iter_4.pth'))
