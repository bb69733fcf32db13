# SLF whose decision network is trained by the 'progress' objective (see
# docs/slf.md), with the paper's estimator: K = 4 one-hot Gumbel-softmax
# samples per image.
_base_ = './_base_slf.py'
strategy_name = 'SLF progress (K=4)'
model = dict(bbox_head=dict(weighting=dict(
    decision_objective='progress', estimator='gumbel', num_samples=4)))
# The report sets this config, and the sampling variants that inherit it,
# against the same objective with the expected weights, seed by seed.
paired_with = 'slf-progress-expected'
