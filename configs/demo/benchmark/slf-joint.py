# SLF as published (Algorithm 1: the decision network minimises the same
# objective as the detector) with the KL-to-prior guard, K = 4 one-hot
# Gumbel-softmax samples per image: the earlier default.
_base_ = './_base_slf.py'
strategy_name = 'SLF joint + KL (K=4)'
model = dict(bbox_head=dict(weighting=dict(
    decision_objective='joint', estimator='gumbel', num_samples=4)))
