# YOLOv1 (Redmon et al., CVPR 2016): 24-conv network, FC head, S=7, B=2.
# To train at another size, change `input_size` here and the Resize scale of
# the dataset pipelines together (the FC head is sized by the input).
input_size = 448  # square network input, a multiple of the stride 64
num_classes = 20  # PASCAL VOC

model = dict(
    type='SingleStageDetector',
    # darknet feeds RGB in [0, 1]; every image is squashed to input_size.
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[0, 0, 0],
        std=[255., 255., 255.],
        bgr_to_rgb=True,
        pad_size_divisor=64),
    backbone=dict(
        type='YOLOV1Darknet',
        arch='yolo',  # 'yolo': 24 conv layers; 'fast': 9 (Fast YOLO)
        widen_factor=1.0,
        # BN is ours (darknet's later yolov1.cfg has it too): the paper's
        # conv layers have none but start from ImageNet weights we lack.
        norm_cfg=dict(type='BN', requires_grad=True),
        # ImageNet weights of the first 20 layers, where you have them:
        # init_cfg=dict(type='Pretrained', checkpoint='path/to/yolo.pth'),
    ),
    neck=None,
    bbox_head=dict(
        type='YOLOV1Head',
        num_classes=num_classes,
        in_channels=1024,  # backbone width x widen_factor
        input_size=input_size,
        featmap_stride=64,
        num_grids=7,  # S
        num_boxes=2,  # B
        fc_channels=4096,
        dropout=0.5,
        # The paper's last layer is linear; sigmoid (ours) bounds x, y,
        # sqrt(w), sqrt(h), confidences and class probabilities to [0, 1],
        # which keeps training from scratch stable.
        output_act='sigmoid',
        rescore=True,  # obj target = IoU of the responsible box
        # The paper's lambda_coord, lambda_pred, lambda_obj, lambda_noobj,
        # over the head's terms coord, pred, obj, noobj.
        weighting=dict(type='FixedWeighting', weights=[5.0, 1.0, 1.0, 0.5])),
    train_cfg=None,
    # darknet's VOC evaluation: keep boxes above 0.001, per-class NMS 0.5.
    test_cfg=dict(
        score_thr=0.001,
        nms=dict(type='nms', iou_threshold=0.5),
        max_per_img=100))
