# Runtime shared by the mmdet-slf configs: mmdet's default runtime
# (configs/_base_/default_runtime.py, Apache License 2.0) plus the plugin
# import, its runner and its hooks. Everything a run needs is here, so
# mmdet's own tools/train.py runs these configs exactly as ours does.
default_scope = 'mmdet'
# The second import switches on weights-only checkpoint loading with clear
# errors (mmdet_slf/engine/checkpoint/safe_load.py); `import mmdet_slf` alone
# leaves mmengine's loader as it is.
custom_imports = dict(
    imports=['mmdet_slf', 'mmdet_slf.engine.checkpoint.install_safe_loading'],
    allow_failed_imports=False)
# mmengine's Runner plus start-up checks of the data roots and image lists,
# and `--launcher pytorch` on machines without CUDA (gloo).
runner_type = 'CheckedRunner'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # mmengine's CheckpointHook with atomic saves, and an auto-resume that
    # skips an unreadable latest checkpoint (docs/troubleshooting.md).
    checkpoint=dict(
        type='CrashSafeCheckpointHook', interval=5, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'))
custom_hooks = [
    # Data against model at start-up: num_classes, unknown XML class names,
    # inverted boxes.
    dict(type='DatasetCheckHook'),
    # Refuses to resume from or test a checkpoint of another model.
    dict(type='CheckpointCheckHook'),
    # Random streams seeded per iteration, so a resumed run is exact.
    dict(type='IterSeedHook'),
    # slf_w_<term>, slf_p_<term>, slf_temperature, slf_entropy -> MessageHub
    dict(type='SLFLoggerHook'),
]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)

log_level = 'INFO'
load_from = None
resume = False
