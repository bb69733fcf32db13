# SLF whose decision network is trained by the 'teacher' objective (see
# docs/slf.md), with the paper's estimator: K = 4 one-hot Gumbel-softmax
# samples per image.
_base_ = './_base_slf.py'
strategy_name = 'SLF teacher (K=4)'
model = dict(bbox_head=dict(weighting=dict(
    decision_objective='teacher', estimator='gumbel', num_samples=4)))
paired_with = 'slf-teacher-expected'
