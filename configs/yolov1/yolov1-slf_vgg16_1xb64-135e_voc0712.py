# YOLO VGG-16 + SLF on VOC 2007+2012: Table 5 row "YOLO VGG-16+SLF"
# (69.6 mAP). yolov1_vgg16_1xb64-135e_voc0712.py with the SLF weighting of
# _base_/slf_weighting.py around its fixed lambdas.
_base_ = [
    './yolov1_vgg16_1xb64-135e_voc0712.py', '../_base_/slf_weighting.py'
]

model = dict(
    bbox_head=dict(
        weighting=dict(
            _base_.slf_weighting,
            _delete_=True,  # replaces the FixedWeighting of the baseline
            prior=_base_.model.bbox_head.weighting.weights)))
optim_wrapper = _base_.slf_optim_wrapper
