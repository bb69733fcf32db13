# The sampling study: 'progress' with one p_hat of K = 4 one-hot
# Gumbel-softmax samples for the whole batch (slf-progress.py draws one per
# image).
_base_ = './slf-progress.py'
strategy_name = 'SLF progress (per batch, K=4)'
model = dict(bbox_head=dict(weighting=dict(per_image=False)))
