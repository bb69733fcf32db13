_base_ = '../../configs/yolo_slf_voc.py'
# The weighting's CUDA graphs are opt-in (the default is eager calls).
model = dict(bbox_head=dict(weighting=dict(cuda_graph=True)))
