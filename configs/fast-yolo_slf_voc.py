# The name the README uses; the config is its _base_.
_base_ = './yolov1/yolov1-slf_darknet9_1xb64-135e_voc0712.py'
