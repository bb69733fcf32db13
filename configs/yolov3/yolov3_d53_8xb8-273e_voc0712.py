# YOLOv3 (Darknet-53) on VOC 2007+2012, scored on VOC2007 test (11-point
# mAP). Model, multi-scale training and schedule are mmdet's COCO config;
# the head is YOLOV3SLFHead with FixedWeighting, which computes exactly
# mmdet's YOLOv3 loss (xy and wh weight 2, cls and conf weight 1) from the
# four roles coord / pred / obj / noobj, so the SLF config differs from this
# baseline only in the weighting.
_base_ = [
    'mmdet::yolo/yolov3_d53_8xb8-ms-608-273e_coco.py',
    '../_base_/plugin_runtime.py'
]
# This project's runtime on top of mmdet's (_base_/plugin_runtime.py).
default_hooks = dict(checkpoint=dict(type='CrashSafeCheckpointHook'))
custom_hooks = _base_.get('custom_hooks', []) + _base_.plugin_hooks

img_scale = (608, 608)  # test size; training draws from 320..608
num_classes = 20

model = dict(
    bbox_head=dict(
        type='YOLOV3SLFHead',
        num_classes=num_classes,
        # mmdet's COCO config weights xy and wh by 2 inside the loss
        # modules; the head takes every weight from its weighting instead
        # (and refuses others), so these are 1 and the 2 is below.
        loss_xy=dict(loss_weight=1.0),
        loss_wh=dict(loss_weight=1.0),
        # coord, pred, obj, noobj
        weighting=dict(type='FixedWeighting', weights=[2.0, 1.0, 1.0, 1.0])))

dataset_type = 'VOCDataset'
data_root = 'data/VOCdevkit/'
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Expand', mean=[0, 0, 0], to_rgb=True, ratio_range=(1, 2)),
    dict(
        type='MinIoURandomCrop',
        min_ious=(0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
        min_crop_size=0.3),
    dict(type='RandomResize', scale=[(320, 320), img_scale], keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        ignore_keys=['dataset_type'],
        datasets=[
            dict(
                type=dataset_type,
                data_root=data_root,
                ann_file=f'VOC{year}/ImageSets/Main/trainval.txt',
                data_prefix=dict(sub_data_root=f'VOC{year}/'),
                filter_cfg=dict(filter_empty_gt=True, min_size=32),
                pipeline=train_pipeline,
                backend_args=backend_args) for year in ('2007', '2012')
        ]))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        ann_file='VOC2007/ImageSets/Main/test.txt',
        data_prefix=dict(sub_data_root='VOC2007/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(
    _delete_=True, type='VOCMetric', metric='mAP', eval_mode='11points')
test_evaluator = val_evaluator
