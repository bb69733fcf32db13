# A step-size control for the fixed lambdas: YOLO's (5, 1, 1, 0.5) with twice
# the benchmark's learning rate, warm-up and cosine floor scaled with it.
# Uncertainty weighting's total weight grows about tenfold over 1,200
# iterations (docs/slf.md, finding 9), which under AdamW acts like a larger
# step; this config and fixed-lr4x.py ask whether the fixed lambdas get the
# same gain from a larger step alone.
_base_ = './fixed.py'
strategy_name = 'Fixed (5, 1, 1, 0.5), learning rate x2'
# the cosine floor follows: eta_min_ratio in _base_digits-128.py
optim_wrapper = dict(optimizer=dict(lr=8e-3))  # 2 x base_lr
