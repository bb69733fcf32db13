# YOLO's fixed lambdas (coord 5, pred 1, obj 1, noobj 0.5): the reference.
_base_ = './_base_digits-128.py'
strategy_name = 'Fixed (5, 1, 1, 0.5)'
