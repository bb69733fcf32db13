# The sampling study: 'progress' with the paper's estimator at K = 1 one-hot
# Gumbel-softmax samples per image (slf-progress.py has K = 4).
_base_ = './slf-progress.py'
strategy_name = 'SLF progress (K=1)'
model = dict(bbox_head=dict(weighting=dict(num_samples=1)))
