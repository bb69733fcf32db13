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
#   optim_wrapper = dict(paramwise_cfg=_base_.slf_paramwise_cfg)
#
# With the lambdas as prior the decision network starts at
# p = prior / sum(prior) and scale = sum(prior), i.e. at the baseline's
# weights in expectation. The head fills in its terms and in_channels (the
# length of its decision features, e.g. B * 5 + C = 30 for YOLOv1 on VOC).
slf_weighting = dict(
    type='SLFWeighting',
    num_samples=4,  # K Gumbel-softmax samples per image, Eq. (10)
    temperature=1.0,  # tau
    per_image=True,
    # The decision network reads the mean prediction of each image;
    # detach_features=False backpropagates Eq. (11) through it into the
    # detector, as the paper's joint training does.
    detach_features=True,
    # KL(p || prior) guard against collapsing onto the smallest term (ours;
    # kl_weight=0 is the bare Algorithm 1).
    kl_weight=5.0)

# The decision network gets its own learning-rate multiplier and no weight
# decay (decay would pull its log-prior bias towards uniform weights).
slf_paramwise_cfg = dict(
    custom_keys={'bbox_head.weighting': dict(lr_mult=1.0, decay_mult=0.0)})
