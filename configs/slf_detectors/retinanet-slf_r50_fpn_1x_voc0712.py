# RetinaNet on VOC0712 with SLF over its classification and box terms.
_base_ = [
    'mmdet::pascal_voc/retinanet_r50_fpn_1x_voc0712.py',
    '../_base_/plugin_runtime.py'
]
# This project's runtime on top of mmdet's (_base_/plugin_runtime.py).
default_hooks = dict(checkpoint=dict(type='CrashSafeCheckpointHook'))
custom_hooks = _base_.get('custom_hooks', []) + _base_.plugin_hooks

model = dict(
    type='SLFDetector',
    detector_type='RetinaNet',
    terms=dict(cls=['loss_cls'], box=['loss_bbox']),  # 5 levels each
    # SLFWeighting's defaults: the 'scale_free' decision objective and the
    # expected weights (docs/slf.md). The paper's Algorithm 1 is
    # dict(type='SLFWeighting', decision_objective='joint',
    #      estimator='gumbel').
    weighting=dict(type='SLFWeighting'))

# The decision network without weight decay (it would pull its log-prior bias
# towards uniform weights), in one parameter group of its own.
optim_wrapper = dict(
    constructor='MergedGroupsOptimWrapperConstructor',
    paramwise_cfg=dict(
        custom_keys={'weighting': dict(lr_mult=1.0, decay_mult=0.0)}))
