# Homoscedastic uncertainty weighting (Kendall et al., 2018), started at
# YOLO's lambdas.
_base_ = './_base_digits-128.py'
strategy_name = 'Uncertainty'
model = dict(
    bbox_head=dict(
        weighting=dict(
            _delete_=True,
            type='UncertaintyWeighting',
            init_weights=[5.0, 1.0, 1.0, 0.5])))
