# YOLO (24 conv layers) with fixed lambdas on VOC 2007+2012, its two fully
# connected output layers replaced by a 1x1 convolution per grid cell (ours,
# not in the paper). Needs input_size / featmap_stride == num_grids: 448 / 64
# = 7 here; change them together.
_base_ = './yolov1_darknet24_1xb64-135e_voc0712.py'

model = dict(bbox_head=dict(head='conv'))
