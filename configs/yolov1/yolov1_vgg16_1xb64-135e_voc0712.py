# YOLO with a VGG-16 trunk and fixed lambdas on VOC 2007+2012: Table 5 row
# "YOLO VGG-16" (66.4 mAP, 21 FPS). The trunk starts from torchvision's
# ImageNet VGG-16 (downloaded from download.pytorch.org on first use); the
# four extra conv layers and the FC head are trained from scratch.
_base_ = './yolov1_darknet24_1xb64-135e_voc0712.py'

model = dict(
    # torchvision's VGG-16 expects ImageNet-normalised RGB.
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
    backbone=dict(
        _delete_=True,
        type='YOLOVGG',
        depth=16,
        extra_channels=1024,
        # torchvision's ImageNet VGG-16 (its `features.<i>` names match)
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.pytorch.org/models/'
            'vgg16-397923af.pth')),
    bbox_head=dict(in_channels=1024))
