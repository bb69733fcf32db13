# SLF on the benchmark setting: the shared SLF block of the VOC configs with
# YOLO's lambdas as prior; the strategy configs change the decision
# objective and the estimator of p_hat.
_base_ = ['./_base_digits-128.py', '../../_base_/slf_weighting.py']

model = dict(
    bbox_head=dict(
        weighting=dict(
            _base_.slf_weighting,
            _delete_=True,
            prior=_base_.model.bbox_head.weighting.weights)))
optim_wrapper = _base_.slf_optim_wrapper
