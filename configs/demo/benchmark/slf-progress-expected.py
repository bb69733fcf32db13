# The 'progress' decision objective with the expected weights in the forward
# pass (p_hat = p, no sampling noise); the decision network is still trained
# by its own objective.
_base_ = './_base_slf.py'
strategy_name = 'SLF progress (expected)'
model = dict(
    bbox_head=dict(
        weighting=dict(decision_objective='progress', estimator='expected')))
