# A control for Uncertainty weighting: the same learned rule for s, but the
# detector's weights rescaled to the total of YOLO's lambdas (7.5) at every
# step. Kendall's total grows as the terms fall, which under AdamW acts like
# a larger step; this config keeps only the balance it learns.
_base_ = './uncertainty.py'
strategy_name = 'Uncertainty, total fixed'
model = dict(bbox_head=dict(weighting=dict(fixed_total=True)))
