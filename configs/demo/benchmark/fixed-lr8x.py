# The edge of the step-size grid for the fixed lambdas: YOLO's (5, 1, 1, 0.5)
# with eight times the benchmark's learning rate. fixed-lr4x.py had the best
# validation mAP of x1, x2 and x4; this config asks whether the grid stopped
# short of the fixed lambdas' best rate.
_base_ = './fixed.py'
strategy_name = 'Fixed (5, 1, 1, 0.5), learning rate x8'
# the cosine floor follows: eta_min_ratio in _base_digits-128.py
optim_wrapper = dict(optimizer=dict(lr=3.2e-2))  # 8 x base_lr
