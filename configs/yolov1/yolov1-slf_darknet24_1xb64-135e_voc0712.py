# YOLO + SLF on VOC 2007+2012: Table 5 row "YOLO+SLF" (65.4 mAP). Same as
# yolov1_darknet24_1xb64-135e_voc0712.py except that a decision network
# samples the four loss weights (_base_/slf_weighting.py) instead of the
# fixed lambdas, which are its prior.
_base_ = [
    './yolov1_darknet24_1xb64-135e_voc0712.py', '../_base_/slf_weighting.py'
]

model = dict(
    bbox_head=dict(
        weighting=dict(
            _base_.slf_weighting,
            _delete_=True,  # replaces the FixedWeighting of the baseline
            prior=_base_.model.bbox_head.weighting.weights)))  # 7.5 in all
optim_wrapper = _base_.slf_optim_wrapper
