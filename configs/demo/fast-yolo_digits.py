# Embedded CPU demo, fixed-lambda baseline: Fast YOLO on the handwritten-
# digits VOC set made by `python tools/make_demo_data.py`. Inherits the VOC
# config and overrides only data, sizes and schedule, so the demo runs the
# code path a VOC user runs. It keeps the YOLOv1 loss (coord, pred, obj,
# noobj with lambdas 5, 1, 1, 0.5): those lambdas are what SLF replaces.
#
# Departures from the paper, each measured on the demo (2-core CPU, VOC07
# 11-point mAP on the 300 test images; docs/yolo.md has the table):
# - head='conv': a 1x1 convolution predicts each cell from its own feature
#   column instead of the two FC layers; with the FC head the demo reached
#   0.104 after 1,500 iterations, the conv head 0.696 after 800 (same
#   quarter-width network and learning rate 2e-3);
# - half-width Fast YOLO, its first five stages (stride 32) at 192 x 192, no
#   ImageNet pre-training: widening from 0.25 to 0.5 with learning rate 4e-3
#   gave 0.903 after 600 iterations, learning rate 6e-3 0.910 and 0.900
#   after 500 (two seeds), so the demo trains for 600;
# - AdamW with warm-up and cosine decay instead of SGD with steps; no
#   augmentation (digits are not mirror-symmetric, and the set already
#   varies scale and position); BN and sigmoid outputs as in the VOC configs.
_base_ = '../fast-yolo_voc.py'

input_size = 192  # square input
num_grids = 6  # S: 32-pixel cells for digits of 12-68 x 25-80 pixels
widen_factor = 0.5  # Fast YOLO at half its filters: 2-core CPU
# The head reads the stride-32 map (6 x 6, stage 4): one cell per position.
out_stage = 4
featmap_stride = 32
head = 'conv'  # 1x1-conv output layer instead of the paper's FC layers
max_iters = 600  # 9.6 epochs of 2000 images at batch 32
batch_size = 32
base_lr = 6e-3
warmup_iters = 50
val_interval = 200  # the mAP-vs-iteration curve (each point ~7 s)
data_root = 'data/digits_voc/VOCdevkit/'
classes = ('0', '1', '2', '3', '4', '5', '6', '7', '8', '9')
# Parameters of the demo set, read by tools/run_demo.py and
# tools/benchmark.py (and the defaults of tools/make_demo_data.py): 1-3
# digits per image, some overlapping. With the generator's defaults (1-5
# digits, more overlap) short CPU runs reached about half the mAP.
demo_data = dict(
    digits_per_image=(1, 3),
    digit_size=(0.2, 0.38),
    max_overlap=0.1,
    overlap_prob=0.15)

model = dict(
    backbone=dict(widen_factor=widen_factor, out_indices=(out_stage, )),
    bbox_head=dict(
        num_classes=len(classes),
        in_channels=int(256 * widen_factor),  # stage 4 of Fast YOLO
        input_size=input_size,
        featmap_stride=featmap_stride,
        num_grids=num_grids,
        head=head,
        dropout=0.0,
        # A box that no predictor overlaps goes to predictor 0, as in every
        # benchmark run (the VOC configs take darknet's nearest predictor).
        no_overlap='first'))

# No augmentation: digits are not mirror-symmetric (no flips), the demo set
# already varies scale and position, and in a 24-epoch budget the VOC
# config's affine jitter only slowed learning down.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(
        _delete_=True,
        type='VOCDataset',
        data_root=data_root,
        ann_file='DIGITS/ImageSets/Main/trainval.txt',
        data_prefix=dict(sub_data_root='DIGITS/'),
        metainfo=dict(classes=classes),
        filter_cfg=dict(filter_empty_gt=True, min_size=1),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(
        data_root=data_root,
        ann_file='DIGITS/ImageSets/Main/test.txt',
        data_prefix=dict(sub_data_root='DIGITS/'),
        metainfo=dict(classes=classes),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=val_interval)
# The demo's own optimizer, whole: unlike the VOC schedule's darknet SGD,
# AdamW here decays every parameter (biases and BN included).
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=base_lr, weight_decay=0.0005),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters,
         end=max_iters, eta_min=base_lr * 0.05)
]
default_hooks = dict(
    # log_metric_by_epoch=False: validation mAP is logged at its iteration
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CrashSafeCheckpointHook', by_epoch=False,
                    interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False, window_size=50)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
auto_scale_lr = dict(enable=False, base_batch_size=batch_size)
