# SLF whose decision network is trained by the 'scale_free' objective (see
# docs/slf.md), with the paper's estimator: K = 4 one-hot Gumbel-softmax
# samples per image.
_base_ = './_base_slf.py'
strategy_name = 'SLF scale-free (K=4)'
model = dict(bbox_head=dict(weighting=dict(
    decision_objective='scale_free', estimator='gumbel', num_samples=4)))
paired_with = 'slf-scale-free-expected'
