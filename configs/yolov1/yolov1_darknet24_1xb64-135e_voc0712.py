# YOLO (24 conv layers) with the paper's fixed lambdas [5, 1, 1, 0.5] on
# VOC 2007+2012: Table 5 row "YOLO" (63.4 mAP on VOC2007 test, 45 FPS).
# Input size: `input_size` in _base_/models/yolov1.py and `img_scale` in
# _base_/datasets/voc0712_yolov1.py go together; widths: backbone
# widen_factor with bbox_head.in_channels = 1024 x widen_factor.
_base_ = [
    '../_base_/models/yolov1.py', '../_base_/datasets/voc0712_yolov1.py',
    '../_base_/schedules/yolov1_135e.py', '../_base_/default_runtime.py'
]
