# The sampling study: 'progress' with K = 4 soft (relaxed, tau = 1)
# Gumbel-softmax samples per image in place of the paper's one-hot ones.
_base_ = './slf-progress.py'
strategy_name = 'SLF progress (soft, K=4)'
model = dict(bbox_head=dict(weighting=dict(hard=False)))
