# GFL on VOC whose head lets SLF choose, per step, between the quality focal
# loss and the IoU-balanced focal loss for classification, and between GIoU
# and the IoU-balanced smooth L1 loss for box regression. GFLHead passes
# (labels, IoU of each positive's regressed box) to its classification loss
# and decoded boxes to its box loss: exactly what the IoU-balanced losses
# need. The detector is built on the VOC RetinaNet config (same backbone,
# data and schedule) with GFL's head and assigner.
_base_ = [
    'mmdet::pascal_voc/retinanet_r50_fpn_1x_voc0712.py',
    '../_base_/plugin_runtime.py'
]
# This project's runtime on top of mmdet's (_base_/plugin_runtime.py).
default_hooks = dict(checkpoint=dict(type='CrashSafeCheckpointHook'))
custom_hooks = _base_.get('custom_hooks', []) + _base_.plugin_hooks

iou_eta = 1.5  # eta of the IoU-balanced classification loss
iou_exponent = 1.5  # lambda of the IoU-balanced localisation loss
# The IoU-balanced normaliser keeps the loss sum over the positives of one
# call of the loss. GFLHead calls its losses once per FPN level, so here the
# sum is kept per level (a level with a single positive gets factor exactly
# 1), not over the mini-batch as in the IoU-balanced paper.
# The candidates are alternatives for one role, so each SLFLoss keeps its
# default weighting, SELECTION in mmdet_slf/models/losses/slf_loss.py: the
# paper's draw (K = 4 one-hot Gumbel-softmax samples averaged into weights
# that are multiples of 1/4, the joint objective, this project's KL guard),
# one draw per call of the loss, shared by the images of that call. A
# `weighting=dict(...)` in an SLFLoss replaces it whole.

model = dict(
    type='GFL',
    neck=dict(add_extra_convs='on_output'),
    bbox_head=dict(
        _delete_=True,
        type='GFLHead',
        num_classes=20,
        in_channels=256,
        stacked_convs=4,
        feat_channels=256,
        anchor_generator=dict(
            type='AnchorGenerator',
            ratios=[1.0],
            octave_base_scale=8,
            scales_per_octave=1,
            strides=[8, 16, 32, 64, 128]),
        loss_cls=dict(
            type='SLFLoss',
            use_sigmoid=True,
            names=['qualityfocal', 'ioubalanced'],
            candidates=[
                dict(type='QualityFocalLoss', use_sigmoid=True, beta=2.0),
                dict(
                    type='IoUBalancedClsLoss',
                    use_sigmoid=True,
                    eta=iou_eta,
                    loss_cls=dict(type='FocalLoss', gamma=2.0, alpha=0.25))
            ]),
        loss_dfl=dict(type='DistributionFocalLoss', loss_weight=0.25),
        reg_max=16,
        loss_bbox=dict(
            type='SLFLoss',
            names=['giou', 'ioubalanced'],
            candidates=[
                dict(type='GIoULoss'),
                # Boxes are in units of the level's stride here.
                dict(
                    type='IoUBalancedSmoothL1Loss',
                    beta=1.0,
                    exponent=iou_exponent)
            ],
            loss_weight=2.0)),
    train_cfg=dict(
        _delete_=True,
        assigner=dict(type='ATSSAssigner', topk=9),
        allowed_border=-1,
        pos_weight=-1,
        debug=False),
    test_cfg=dict(nms=dict(type='nms', iou_threshold=0.6)))
