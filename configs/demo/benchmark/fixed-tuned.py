# Fixed lambdas tuned on a validation split: the best of 8 settings drawn
# log-uniformly within x4 of (5, 1, 1, 0.5) (coord, pred, obj, noobj; each
# lambda independently, seed 0), each trained once (600 iterations, training
# seed 0) on the 1700 images of train.txt and ranked by the final VOC mAP on
# the 300 images of val.txt, both held out of trainval.txt; the test images
# were not used.
# Cost: 8 training runs, 16.7 minutes of training.
# Made by:
#   python tools/tune_fixed_lambdas.py --num-settings 8 --seed 0 \
#       --num-val 300 --work-dir work_dirs/tune_fixed \
#       --write-config
#
# | setting | coord | pred | obj | noobj | val mAP | minutes |
# |---|---|---|---|---|---|---|
# | 0 | 7.31 | 0.528 | 0.28 | 0.131 | 0.7981 | 2.0 |
# | 1 (best) | 11.9 | 3.14 | 1.34 | 0.945 | 0.8380 | 1.8 |
# | 2 | 5.64 | 3.34 | 2.4 | 0.126 | 0.8175 | 2.4 |
# | 3 | 13.5 | 0.274 | 1.89 | 0.203 | 0.3248 | 2.1 |
# | 4 | 13.7 | 1.12 | 0.574 | 0.404 | 0.8069 | 2.0 |
# | 5 | 1.35 | 0.353 | 1.6 | 0.752 | 0.5515 | 2.2 |
# | 6 | 6.89 | 0.724 | 3.97 | 1.9 | 0.5808 | 2.2 |
# | 7 | 8.36 | 1.52 | 1.69 | 0.367 | 0.8376 | 2.0 |
_base_ = './_base_digits-128.py'
strategy_name = 'Fixed, tuned lambdas (11.9, 3.14, 1.34, 0.945)'
search_runs = 8  # the cost of choosing them
search_iters = 600  # the length of each search run
model = dict(
    bbox_head=dict(
        weighting=dict(
            _delete_=True,
            type='FixedWeighting',
            weights=[11.9, 3.14, 1.34, 0.945])))
