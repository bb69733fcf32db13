# PASCAL VOC 2007+2012 trainval for training, VOC2007 test for evaluation,
# with YOLOv1's input handling: every image squashed to img_scale (no
# aspect ratio kept), as darknet does.
dataset_type = 'VOCDataset'
data_root = 'data/VOCdevkit/'
img_scale = (448, 448)  # (w, h); must match model.bbox_head.input_size
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    # "random scaling and translations of up to 20% of the original image
    # size" (YOLO paper, Sec. 2.2), as darknet does them: each side of the
    # crop moves by up to 20% of the image, then Resize squashes the crop.
    dict(type='RandomJitterCrop', jitter=0.2),
    # "randomly adjust the exposure and saturation of the image by up to a
    # factor of 1.5 in the HSV color space": S and V times factors drawn as
    # darknet draws them (mmdet_slf/datasets/transforms.py says how mmdet's
    # Brightness and Color differ).
    dict(type='RandomExposureSaturation', saturation=1.5, exposure=1.5),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),  # darknet flips too
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    # after Resize, so the ground truth stays in original image coordinates
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]

train_dataloader = dict(
    batch_size=64,  # the paper's batch size (one GPU; see auto_scale_lr)
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='ConcatDataset',
        # VOCDataset adds its own `dataset_type` to the metainfo, which
        # ConcatDataset would otherwise refuse as a mismatch.
        ignore_keys=['dataset_type'],
        datasets=[
            dict(
                type=dataset_type,
                data_root=data_root,
                ann_file='VOC2007/ImageSets/Main/trainval.txt',
                data_prefix=dict(sub_data_root='VOC2007/'),
                filter_cfg=dict(filter_empty_gt=True, min_size=32),
                pipeline=train_pipeline,
                backend_args=backend_args),
            dict(
                type=dataset_type,
                data_root=data_root,
                ann_file='VOC2012/ImageSets/Main/trainval.txt',
                data_prefix=dict(sub_data_root='VOC2012/'),
                filter_cfg=dict(filter_empty_gt=True, min_size=32),
                pipeline=train_pipeline,
                backend_args=backend_args)
        ]))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='VOC2007/ImageSets/Main/test.txt',
        data_prefix=dict(sub_data_root='VOC2007/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

# VOC2007 test is scored with the 11-point interpolated AP, as in the paper.
val_evaluator = dict(type='VOCMetric', metric='mAP', eval_mode='11points')
test_evaluator = val_evaluator
