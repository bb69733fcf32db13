# FAMO (Liu et al., NeurIPS 2023), started at YOLO's lambdas, total 7.5.
_base_ = './_base_digits-128.py'
strategy_name = 'FAMO'
model = dict(
    bbox_head=dict(
        weighting=dict(
            _delete_=True,
            type='FAMOWeighting',
            init_weights=[5.0, 1.0, 1.0, 0.5])))
