# The SLF default with the lambdas searched at 1,200 iterations
# (fixed-tuned-1200.py: 13.7, 1.12, 0.574, 0.404) as its prior instead of
# YOLO's 5/1/1/0.5. Trained beside those fixed lambdas on the same seeds, it
# asks whether SLF adds anything on top of lambdas tuned by search
# (docs/results-1200-slf-on-tuned.md).
_base_ = './slf-scale-free-expected.py'
strategy_name = 'SLF scale-free (expected), prior (13.7, 1.12, 0.574, 0.404)'
model = dict(
    bbox_head=dict(weighting=dict(prior=[13.7, 1.12, 0.574, 0.404])))
