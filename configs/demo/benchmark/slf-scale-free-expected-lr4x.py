# The SLF default at the learning rate chosen for the fixed lambdas on the
# validation split (fixed-lr4x.py: x4 had the higher mean validation mAP of
# x2 and x4, seeds 0 and 1; docs/results-1200-lr-validation.md), so that
# SLF is compared with Fixed at the stronger step as well.
_base_ = './slf-scale-free-expected.py'
strategy_name = 'SLF scale-free (expected), learning rate x4'
# the cosine floor follows: eta_min_ratio in _base_digits-128.py
optim_wrapper = dict(optimizer=dict(lr=1.6e-2))  # 4 x base_lr
