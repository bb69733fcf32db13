# YOLOv3 (Darknet-53) + SLF on VOC 2007+2012: the baseline
# yolov3_d53_8xb8-273e_voc0712.py with the four loss roles weighted by the
# Stochastic Loss Function (_base_/slf_weighting.py) around mmdet's weights
# [2, 1, 1, 1], its prior.
_base_ = [
    './yolov3_d53_8xb8-273e_voc0712.py', '../_base_/slf_weighting.py'
]

model = dict(
    bbox_head=dict(
        weighting=dict(
            _base_.slf_weighting,
            _delete_=True,  # replaces the FixedWeighting of the baseline
            prior=_base_.model.bbox_head.weighting.weights)))  # scale = 5
optim_wrapper = _base_.slf_optim_wrapper
