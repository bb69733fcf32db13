_base_ = '../../configs/yolo_slf_voc.py'
model = dict(bbox_head=dict(weighting=dict(cuda_graph=False)))
