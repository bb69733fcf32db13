# YOLOv1 schedule (paper, Sec. 2.2): 135 epochs, batch 64, SGD momentum 0.9,
# weight decay 5e-4; lr raised from 1e-3 to 1e-2 over the first epochs, then
# 1e-2 for 75 epochs, 1e-3 for 30 and 1e-4 for 30.
# Those are the paper's numbers in darknet's convention, whose error signal
# scale * (t - o) is the gradient of half the sum-squared loss; the head's
# loss is the whole sum, so its gradient is twice darknet's. Half the
# learning rate and twice the decay give darknet's step on the conv and FC
# weights: lr/2 * (2 g + 2 decay w) = lr * (g + decay w), momentum included.
# As in darknet, biases and batch-norm scales and shifts are not decayed.
# The decision network of the SLF configs (no decay) steps at this rate too,
# half the 1e-2 it had before 2026-11-29.
max_epochs = 135
darknet_lr, darknet_decay = 0.01, 0.0005
base_lr = darknet_lr / 2
warmup_epochs = 5  # "the first epochs": the exact count is ours

train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='SGD', lr=base_lr, momentum=0.9, weight_decay=2 * darknet_decay),
    # darknet decays the conv and FC weights only. mmengine's constructor
    # would give each parameter a group of its own under a paramwise_cfg;
    # this one merges the equal ones into 2 (decayed and not).
    constructor='MergedGroupsOptimWrapperConstructor',
    paramwise_cfg=dict(bias_decay_mult=0.0, norm_decay_mult=0.0),
    # Ours: guards the sum-squared loss against early spikes from scratch.
    clip_grad=dict(max_norm=35, norm_type=2))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='MultiStepLR',
        by_epoch=True,
        begin=0,
        end=max_epochs,
        milestones=[75, 105],
        gamma=0.1)
]

# Linear scaling for other batch sizes (`tools/train.py --auto-scale-lr`).
auto_scale_lr = dict(enable=False, base_batch_size=64)
