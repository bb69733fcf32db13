# Faster R-CNN on VOC whose RoI head lets SLF choose, per step, between
# cross-entropy and the bi-tempered logistic loss for classification, and
# between L1 and the IoU-balanced smooth L1 loss for box regression.
_base_ = [
    'mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py',
    '../_base_/plugin_runtime.py'
]
# This project's runtime on top of mmdet's (_base_/plugin_runtime.py).
default_hooks = dict(checkpoint=dict(type='CrashSafeCheckpointHook'))
custom_hooks = _base_.get('custom_hooks', []) + _base_.plugin_hooks

# Bi-tempered temperatures: t1 < 1 bounds the loss, t2 > 1 gives the tempered
# softmax heavy tails (t1 = t2 = 1 is cross-entropy).
bitempered_t1 = 0.8
bitempered_t2 = 1.2
iou_exponent = 1.5  # lambda of the IoU-balanced localisation loss
# The candidates are alternatives for one role, so each SLFLoss keeps its
# default weighting, SELECTION in mmdet_slf/models/losses/slf_loss.py: the
# paper's draw (K = 4 one-hot Gumbel-softmax samples averaged into weights
# that are multiples of 1/4, the joint objective, this project's KL guard),
# one draw per call of the loss, shared by the images of that call. A
# `weighting=dict(...)` in an SLFLoss replaces it whole.

# The deltas are decoded with the RoI head's own coder to get each positive's
# IoU, so this must stay equal to roi_head.bbox_head.bbox_coder.
roi_bbox_coder = dict(
    type='DeltaXYWHBBoxCoder',
    target_means=[0.0, 0.0, 0.0, 0.0],
    target_stds=[0.1, 0.1, 0.2, 0.2])

model = dict(
    roi_head=dict(
        bbox_head=dict(
            bbox_coder=roi_bbox_coder,
            loss_cls=dict(
                _delete_=True,
                type='SLFLoss',
                use_sigmoid=False,
                names=['crossentropy', 'bitempered'],
                candidates=[
                    dict(type='CrossEntropyLoss', use_sigmoid=False),
                    dict(
                        type='BiTemperedLogisticLoss',
                        t1=bitempered_t1,
                        t2=bitempered_t2)
                ]),
            loss_bbox=dict(
                _delete_=True,
                type='SLFLoss',
                names=['l1', 'ioubalanced'],
                candidates=[
                    dict(type='L1Loss'),
                    dict(
                        type='IoUBalancedSmoothL1Loss',
                        beta=1.0,
                        exponent=iou_exponent,
                        bbox_coder=roi_bbox_coder)
                ]))))
