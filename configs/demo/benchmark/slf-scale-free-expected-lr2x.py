# The SLF default at twice the benchmark's learning rate: with
# slf-scale-free-expected-lr4x.py and -lr8x.py, the grid on which SLF's own
# learning rate is chosen on the validation split, as the fixed lambdas'
# was (fixed-lr2x.py, fixed-lr4x.py, fixed-lr8x.py).
_base_ = './slf-scale-free-expected.py'
strategy_name = 'SLF scale-free (expected), learning rate x2'
# the cosine floor follows: eta_min_ratio in _base_digits-128.py
optim_wrapper = dict(optimizer=dict(lr=8e-3))  # 2 x base_lr
