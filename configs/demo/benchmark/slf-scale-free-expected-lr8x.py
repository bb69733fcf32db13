# The SLF default at eight times the benchmark's learning rate, the top of
# the grid on which SLF's own learning rate is chosen on the validation split
# (slf-scale-free-expected-lr2x.py).
_base_ = './slf-scale-free-expected.py'
strategy_name = 'SLF scale-free (expected), learning rate x8'
# the cosine floor follows: eta_min_ratio in _base_digits-128.py
optim_wrapper = dict(optimizer=dict(lr=3.2e-2))  # 8 x base_lr
