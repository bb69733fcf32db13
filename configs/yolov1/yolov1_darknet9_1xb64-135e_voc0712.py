# Fast YOLO (9 conv layers) with fixed lambdas on VOC 2007+2012: Table 5
# row "Fast YOLO" (52.7 mAP, 155 FPS). The FC head is YOLO's.
_base_ = './yolov1_darknet24_1xb64-135e_voc0712.py'

model = dict(
    # widen_factor scales every layer's filters (rounded to multiples of 8);
    # bbox_head.in_channels must follow the last layer's: 1024 x factor.
    backbone=dict(arch='fast', widen_factor=1.0),
    bbox_head=dict(in_channels=1024))
