# One step past the edge of the step-size grid for the fixed lambdas: YOLO's
# (5, 1, 1, 0.5) with sixteen times the benchmark's learning rate. x8 had the
# best validation mAP of x1, x2, x4 and x8, at the grid's edge; this config
# asks whether the fixed lambdas' best rate lies beyond it.
_base_ = './fixed.py'
strategy_name = 'Fixed (5, 1, 1, 0.5), learning rate x16'
# the cosine floor follows: eta_min_ratio in _base_digits-128.py
optim_wrapper = dict(optimizer=dict(lr=6.4e-2))  # 16 x base_lr
