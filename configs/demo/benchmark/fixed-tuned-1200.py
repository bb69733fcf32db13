# Fixed lambdas tuned on a validation split: the best of 8 settings drawn
# log-uniformly within x4 of (5, 1, 1, 0.5) (coord, pred, obj, noobj; each
# lambda independently, seed 0), each trained once (1200 iterations, training
# seed 0) on the 1700 images of train.txt and ranked by the final VOC mAP on
# the 300 images of val.txt, both held out of trainval.txt; the test images
# were not used.
# Cost: 8 training runs, 28.1 minutes of training.
# Made by:
#   python tools/tune_fixed_lambdas.py --num-settings 8 --seed 0 \
#       --num-val 300 --max-iters 1200 --work-dir \
#       work_dirs/tune_fixed-1200 --write-config --config-out \
#       configs/demo/benchmark/fixed-tuned-1200.py
#
# | setting | coord | pred | obj | noobj | val mAP | minutes |
# |---|---|---|---|---|---|---|
# | 0 | 7.31 | 0.528 | 0.28 | 0.131 | 0.8534 | 3.6 |
# | 1 | 11.9 | 3.14 | 1.34 | 0.945 | 0.8480 | 3.6 |
# | 2 | 5.64 | 3.34 | 2.4 | 0.126 | 0.8280 | 3.5 |
# | 3 | 13.5 | 0.274 | 1.89 | 0.203 | 0.8261 | 3.4 |
# | 4 (best) | 13.7 | 1.12 | 0.574 | 0.404 | 0.8543 | 3.0 |
# | 5 | 1.35 | 0.353 | 1.6 | 0.752 | 0.7564 | 3.7 |
# | 6 | 6.89 | 0.724 | 3.97 | 1.9 | 0.7466 | 3.7 |
# | 7 | 8.36 | 1.52 | 1.69 | 0.367 | 0.8416 | 3.5 |
_base_ = './fixed.py'
strategy_name = 'Fixed, tuned lambdas (13.7, 1.12, 0.574, 0.404)'
search_runs = 8  # the cost of choosing them
search_iters = 1200  # the length of each search run
model = dict(
    bbox_head=dict(
        weighting=dict(
            _delete_=True,
            type='FixedWeighting',
            weights=[13.7, 1.12, 0.574, 0.404])))
