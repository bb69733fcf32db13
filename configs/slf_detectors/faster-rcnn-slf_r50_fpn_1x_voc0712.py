# Faster R-CNN on VOC0712 with SLF over its four raw loss terms. Everything
# but the loss weighting is mmdet's own config (the fixed-weight baseline).
_base_ = [
    'mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py',
    '../_base_/plugin_runtime.py'
]
# This project's runtime on top of mmdet's (_base_/plugin_runtime.py).
default_hooks = dict(checkpoint=dict(type='CrashSafeCheckpointHook'))
custom_hooks = _base_.get('custom_hooks', []) + _base_.plugin_hooks

# Merged into the parent's model: backbone, heads, train_cfg, ... are kept
# and passed on to FasterRCNN; only loss() is re-weighted.
model = dict(
    type='SLFDetector',
    detector_type='FasterRCNN',
    terms=dict(
        rpn_cls=['loss_rpn_cls'],  # 5 FPN levels, summed
        rpn_box=['loss_rpn_bbox'],
        roi_cls=['loss_cls'],
        roi_box=['loss_bbox']),
    # Uniform prior, scale = 4 terms: expected weights are the parent's 1.
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
