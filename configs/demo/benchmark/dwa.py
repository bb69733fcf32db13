# Dynamic Weight Average (Liu et al., 2019), total weight 7.5 as YOLO's.
_base_ = './_base_digits-128.py'
strategy_name = 'DWA'
model = dict(
    bbox_head=dict(
        weighting=dict(
            _delete_=True, type='DWAWeighting', temperature=2.0, scale=7.5)))
