# The 'scale_free' decision objective with the expected weights in the
# forward pass (p_hat = p), to compare the objectives without sampling noise.
_base_ = './slf-scale-free.py'
strategy_name = 'SLF scale-free (expected)'
model = dict(bbox_head=dict(weighting=dict(estimator='expected')))
# The reference of its K = 4 base, not a variant of it.
paired_with = None
