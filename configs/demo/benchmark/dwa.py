# Dynamic Weight Average (Liu et al., 2019), total weight 7.5 as YOLO's. The
# paper averages each term over an epoch: 63 iterations are one epoch of the
# 2000 demo images at batch 32.
_base_ = './_base_digits-128.py'
strategy_name = 'DWA'
model = dict(
    bbox_head=dict(
        weighting=dict(
            _delete_=True,
            type='DWAWeighting',
            window=63,
            temperature=2.0,
            scale=7.5)))
