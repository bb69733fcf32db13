# SSD300 on VOC0712 with SLF over its classification and box terms.
_base_ = ['mmdet::pascal_voc/ssd300_voc0712.py', '../_base_/plugin_runtime.py']
# This project's runtime on top of mmdet's (_base_/plugin_runtime.py).
default_hooks = dict(checkpoint=dict(type='CrashSafeCheckpointHook'))
custom_hooks = _base_.get('custom_hooks', []) + _base_.plugin_hooks

model = dict(
    type='SLFDetector',
    detector_type='SingleStageDetector',
    terms=dict(cls=['loss_cls'], box=['loss_bbox']),  # one entry per image
    # SLFWeighting's defaults: the 'scale_free' decision objective and the
    # expected weights (docs/slf.md). The paper's Algorithm 1 is
    # dict(type='SLFWeighting', decision_objective='joint',
    #      estimator='gumbel').
    weighting=dict(type='SLFWeighting'),
    # SSDHead with mmdet 3.3's prediction bug fixed (it cannot be evaluated
    # otherwise); same parameters and losses.
    bbox_head=dict(type='PredictableSSDHead'))

# The decision network without weight decay (it would pull its log-prior bias
# towards uniform weights), in one parameter group of its own.
optim_wrapper = dict(
    constructor='MergedGroupsOptimWrapperConstructor',
    paramwise_cfg=dict(
        custom_keys={'weighting': dict(lr_mult=1.0, decay_mult=0.0)}))
