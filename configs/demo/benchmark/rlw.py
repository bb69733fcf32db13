# Random Loss Weighting (Lin et al., 2022), total weight 7.5 as YOLO's.
_base_ = './_base_digits-128.py'
strategy_name = 'RLW'
model = dict(
    bbox_head=dict(
        weighting=dict(_delete_=True, type='RandomWeighting', scale=7.5)))
