# The sampling study: 'progress' with K = 4 stratified draws per image in
# place of independent Gumbel-softmax samples (the same mean weights, the
# variance derived in docs/slf.md).
_base_ = './slf-progress.py'
strategy_name = 'SLF progress (stratified, K=4)'
model = dict(bbox_head=dict(weighting=dict(estimator='stratified')))
