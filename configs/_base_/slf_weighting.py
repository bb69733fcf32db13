# The SLF weighting shared by the configs that put SLF in a head's weighting
# (YOLOv1 and YOLOv3 heads): a decision network samples the loss weights
# (Eq. 9-11) instead of fixed lambdas. A config adds it to the bases of its
# fixed-lambda baseline and uses the baseline's lambdas as the prior:
#
#   _base_ = ['./<baseline>.py', '../_base_/slf_weighting.py']
#   model = dict(bbox_head=dict(weighting=dict(
#       _base_.slf_weighting,
#       _delete_=True,  # replaces the FixedWeighting of the baseline
#       prior=_base_.model.bbox_head.weighting.weights)))
#   optim_wrapper = _base_.slf_optim_wrapper
#
# With the lambdas as prior the decision network starts at
# p = prior / sum(prior) and scale = sum(prior), i.e. at the baseline's
# weights in expectation. The head fills in its terms and in_channels (the
# length of its decision features, e.g. B * 5 + C = 30 for YOLOv1 on VOC).
#
# The decision network is trained by the 'scale_free' objective (Eq. 11 with
# each term relative to its running mean) and the detector by the expected
# weights p (ours; chosen on the benchmark in docs/results.md, see
# docs/slf.md). The paper's Algorithm 1, with our KL guard, is one line away:
#
#   weighting=dict(_base_.slf_weighting, decision_objective='joint',
#                  estimator='gumbel')
slf_weighting = dict(
    type='SLFWeighting',
    decision_objective='scale_free',
    estimator='expected',  # p_hat = p; 'gumbel' is Eq. (10)
    num_samples=4,  # K Gumbel-softmax samples per image with 'gumbel'
    temperature=1.0,  # tau, with 'gumbel'
    per_image=True,
    # The decision network reads the mean prediction of each image
    # (detached; detach_features=False exists for 'joint' only).
    detach_features=True,
    # beta of the decision objective J: p_i ~ prior_i exp(-s_i / beta).
    kl_weight=5.0)

# The decision network gets its own learning-rate multiplier and no weight
# decay (decay would pull its log-prior bias towards uniform weights). Its
# six small tensors take the multi-tensor update, as they would on a GPU by
# default; on a CPU the per-tensor loop is PyTorch's default, and the same
# numbers come out either way.
slf_paramwise_cfg = dict(
    custom_keys={
        'bbox_head.weighting': dict(lr_mult=1.0, decay_mult=0.0, foreach=True)
    })
# mmengine's default constructor would give each parameter its own group
# under any paramwise_cfg; this one merges the equal ones (the decision
# network and one group per setting of the rest), so the multi-tensor
# optimizer kernels still cover the whole network.
slf_optim_wrapper = dict(
    constructor='MergedGroupsOptimWrapperConstructor',
    paramwise_cfg=slf_paramwise_cfg)
