# What this project adds to mmdet's own runtime, for configs that inherit an
# mmdet config (whose runtime is mmdet's configs/_base_/default_runtime.py).
# Such a config lists this file as a second base and writes
#
#   default_hooks = dict(checkpoint=dict(type='CrashSafeCheckpointHook'))
#   custom_hooks = _base_.get('custom_hooks', []) + _base_.plugin_hooks
#
# (default_hooks and custom_hooks are keys of the mmdet base: a second base
# may not set them, and lists replace rather than merge). The YOLOv1 configs
# get the same entries from _base_/default_runtime.py; a test keeps the two
# files equal in them.
custom_imports = dict(
    imports=['mmdet_slf', 'mmdet_slf.engine.checkpoint.install_safe_loading'],
    allow_failed_imports=False)
runner_type = 'CheckedRunner'
plugin_hooks = [
    dict(type='DatasetCheckHook'),
    dict(type='CheckpointCheckHook'),
    dict(type='IterSeedHook'),
    dict(type='SLFLoggerHook'),
]
