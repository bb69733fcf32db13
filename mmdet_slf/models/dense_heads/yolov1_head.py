# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""YOLOv1 head: S x S x (B * 5 + C) output (the paper's fully connected
layers, or a 1x1-conv output layer), the four-part sum-squared loss of Redmon
et al. (CVPR 2016, Eq. 3) and its decoding."""
import copy
from typing import Dict, List, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer
from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
from mmdet.models.utils import filter_scores_and_topk
from mmdet.registry import MODELS
from mmdet.utils import (ConfigType, InstanceList, OptConfigType,
                         OptInstanceList, OptMultiConfig)
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor

from mmdet_slf.slf import build_weighting
from .yolov1_targets import batch_yolov1_targets, check_no_overlap

OUTPUT_ACTS = ('linear', 'sigmoid')
HEAD_TYPES = ('fc', 'conv')


@MODELS.register_module()
class YOLOV1Head(BaseDenseHead):
    """YOLOv1 detection head with a pluggable loss weighting.

    With ``head='fc'`` (the paper) the backbone's ``[N, in_channels,
    H / stride, W / stride]`` map is flattened and passed through
    ``Linear -> LeakyReLU -> Dropout -> Linear`` to ``S x S x (B * 5 + C)``
    values; at 448 x 448 with stride 64 that is the paper's
    ``7 x 7 x 1024 -> 4096 -> 7 x 7 x 30``. With ``head='conv'`` (ours) the
    map must already be ``S x S`` and a 1x1 convolution predicts each cell's
    ``B * 5 + C`` values from that cell's own feature column, as later YOLOs
    do; it has ``S * S`` times fewer output weights and learns far faster
    from scratch (see ``docs/yolo.md``). Each cell holds ``B``
    boxes ``(x, y, sqrt(w), sqrt(h), confidence)`` -- ``x, y`` the centre
    offset within the cell, ``w, h`` relative to the input -- followed by
    ``C`` class probabilities shared by the cell.

    Loss: the cell holding a ground-truth box centre is responsible for it
    (one box per cell; when several centres share a cell the largest box is
    kept), and of its ``B`` predictors the one with the highest IoU with the
    ground truth (the nearest, when none overlaps it: ``no_overlap``). A box
    under 0.005 of the input wide or high takes no cell (darknet's
    ``fill_truth_region``). Four sum-squared terms are computed per image
    and divided by the batch size ``N`` (so the ``[N]`` vector sums to the
    batch loss):
    ``coord`` (responsible boxes, with ``sqrt(w), sqrt(h)``), ``pred``
    (class probabilities of cells holding an object), ``obj`` (responsible
    confidences towards the IoU, or 1 with ``rescore=False``) and ``noobj``
    (all other confidences towards 0). They are returned unweighted as
    ``loss_<term>`` to ``self.weighting``, the only place where weights are
    applied: ``FixedWeighting`` with ``[5, 1, 1, 0.5]`` is the paper's loss,
    ``SLFWeighting`` the Stochastic Loss Function.

    Decision features: the head passes ``features`` = the per-image mean over
    the ``S x S`` cells of its (activated) output, ``[N, B * 5 + C]``, still
    in the graph (``SLFWeighting(detach_features=False)`` backpropagates
    through them, as in the paper's joint training). When ``weighting`` is an
    ``SLFWeighting`` config without an ``in_channels`` key, the head sets
    ``in_channels = B * 5 + C``; an explicit ``in_channels=None`` makes the
    decision network read the detached raw terms instead.

    Args:
        num_classes (int): Number of classes ``C``. Defaults to 20.
        in_channels (int): Channels of the backbone map. Defaults to 1024.
        input_size (int | tuple[int, int]): Network input size, an int or
            ``(width, height)``; must equal the fixed resize of the
            pipelines. Defaults to 448.
        featmap_stride (int): Backbone output stride. Defaults to 64.
        head (str): Output layers: ``'fc'`` (the paper's two fully connected
            layers) or ``'conv'`` (a 1x1 convolution per cell; needs
            ``input_size / featmap_stride == num_grids``). Defaults to 'fc'.
        num_grids (int): Grid size ``S``. Defaults to 7.
        num_boxes (int): Boxes per cell ``B``. Defaults to 2.
        fc_channels (int): Width of the hidden FC layer (``head='fc'``
            only). Defaults to 4096.
        dropout (float): Dropout after the hidden FC layer, or before the
            1x1 convolution. Defaults to 0.5.
        output_act (str): ``'linear'`` (the paper) or ``'sigmoid'`` (every
            output squashed to [0, 1], steadier from scratch).
            Defaults to 'linear'.
        rescore (bool): ``obj`` target is the IoU of the responsible box
            (True, the paper) or 1. Defaults to True.
        no_overlap (str): The responsible predictor of a box that none of
            its cell's predictors overlaps: ``'rmse'``, darknet's, the one
            nearest to it in ``(x, y, w, h)``; ``'first'``, predictor 0 (the
            demo's, with which its benchmark was run). Defaults to 'rmse'.
        act_cfg (dict): Activation after the hidden FC layer. Defaults to
            ``dict(type='LeakyReLU', negative_slope=0.1)``.
        weighting (dict): Loss weighting config; its ``terms`` default to
            ``TERMS``, ``['coord', 'pred', 'obj', 'noobj']``. Defaults to the
            paper's ``FixedWeighting`` with weights ``[5.0, 1.0, 1.0, 0.5]``.
        train_cfg (dict, optional): Unused; kept for mmdet's interface.
            Defaults to None.
        test_cfg (dict, optional): ``score_thr``, ``nms``, ``max_per_img``,
            ``nms_pre``. Defaults to None (score_thr 0.001 and NMS IoU 0.5,
            as darknet's VOC evaluation, and at most 100 boxes per image,
            mmdet's convention: darknet keeps every box above the
            threshold).
        init_cfg (dict or list[dict], optional): Initialisation config.
            Defaults to None: N(0, 0.01) for the output layers only (``fc``
            and ``fc_out``, or ``conv_out``), so the weighting's own layers
            keep their initialisation.
    """

    TERMS = ('coord', 'pred', 'obj', 'noobj')

    def __init__(self,
                 num_classes: int = 20,
                 in_channels: int = 1024,
                 input_size: Union[int, Sequence[int]] = 448,
                 featmap_stride: int = 64,
                 head: str = 'fc',
                 num_grids: int = 7,
                 num_boxes: int = 2,
                 fc_channels: int = 4096,
                 dropout: float = 0.5,
                 output_act: str = 'linear',
                 rescore: bool = True,
                 no_overlap: str = 'rmse',
                 act_cfg: ConfigType = dict(
                     type='LeakyReLU', negative_slope=0.1),
                 weighting: ConfigType = dict(
                     type='FixedWeighting', weights=[5.0, 1.0, 1.0, 0.5]),
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        if init_cfg is None:
            # Only the output layers: the weighting keeps its own start.
            names = ('fc', 'fc_out') if head == 'fc' else ('conv_out', )
            init_cfg = dict(
                type='Normal',
                std=0.01,
                override=[dict(name=name) for name in names])
        super().__init__(init_cfg=init_cfg)
        for key, value in (('num_classes', num_classes),
                           ('in_channels', in_channels),
                           ('featmap_stride', featmap_stride),
                           ('num_grids', num_grids), ('num_boxes', num_boxes),
                           ('fc_channels', fc_channels)):
            if not isinstance(value, int) or isinstance(value, bool) \
                    or value < 1:
                raise ValueError(f'{key} must be an int >= 1, got {value!r}')
        if output_act not in OUTPUT_ACTS:
            raise ValueError(f'output_act must be one of {OUTPUT_ACTS}, '
                             f'got {output_act!r}')
        if head not in HEAD_TYPES:
            raise ValueError(f'head must be one of {HEAD_TYPES}, got {head!r}')
        if not 0 <= dropout < 1:
            raise ValueError(f'dropout must be in [0, 1), got {dropout!r}')
        self.input_size = self._check_input_size(input_size, featmap_stride)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.featmap_stride = featmap_stride
        self.featmap_size = (self.input_size[1] // featmap_stride,
                             self.input_size[0] // featmap_stride)  # (h, w)
        if head == 'conv' and self.featmap_size != (num_grids, num_grids):
            raise ValueError(
                f"head='conv' predicts one cell per feature-map position, so "
                f'input_size / featmap_stride must equal num_grids='
                f'{num_grids}; got a {self.featmap_size[0]} x '
                f'{self.featmap_size[1]} map (input_size={self.input_size}, '
                f'featmap_stride={featmap_stride})')
        self.head = head
        self.num_grids = num_grids
        self.num_boxes = num_boxes
        self.output_act = output_act
        self.rescore = rescore
        self.no_overlap = check_no_overlap(no_overlap)
        self.train_cfg = train_cfg
        self.test_cfg = ConfigDict(
            test_cfg if test_cfg is not None else dict(
                score_thr=0.001,
                nms=dict(type='nms', iou_threshold=0.5),
                max_per_img=100))

        self.dropout = nn.Dropout(dropout)
        if head == 'fc':
            fc_in = in_channels * self.featmap_size[0] * self.featmap_size[1]
            self.fc = nn.Linear(fc_in, fc_channels)
            self.fc_act = build_activation_layer(act_cfg)
            self.fc_out = nn.Linear(fc_channels,
                                    num_grids * num_grids * self.num_attrib)
        else:
            self.conv_out = nn.Conv2d(in_channels, self.num_attrib, 1)

        self.weighting = build_weighting(
            copy.deepcopy(weighting), self.TERMS, self.num_attrib,
            'YOLOV1Head')

    @staticmethod
    def _check_input_size(input_size, stride: int) -> Tuple[int, int]:
        """``input_size`` as ``(width, height)``, each divisible by stride."""
        size = (input_size, input_size) if isinstance(input_size, int) \
            else tuple(input_size)
        if len(size) != 2 or any(
                not isinstance(v, int) or v < stride or v % stride
                for v in size):
            raise ValueError(
                f'input_size must be an int or (width, height) of multiples '
                f'of featmap_stride={stride}, got {input_size!r}')
        return size

    @property
    def num_attrib(self) -> int:
        """Values per cell: ``B * 5 + C`` (30 for VOC)."""
        return self.num_boxes * 5 + self.num_classes

    def forward(self, x: Tuple[Tensor, ...]) -> Tuple[Tensor]:
        """Predict ``([N, S, S, B * 5 + C], )`` from the last backbone map."""
        feat = x[-1]  # [N, in_channels, H / stride, W / stride]
        expected = (self.in_channels, ) + self.featmap_size
        if tuple(feat.shape[1:]) != expected:
            raise ValueError(
                f'YOLOV1Head expects a {list(expected)} feature map '
                f'(in_channels, input_size={self.input_size} / '
                f'featmap_stride={self.featmap_stride}) but got '
                f'{list(feat.shape[1:])}; set model.bbox_head.input_size to '
                f'the resize scale of the pipelines and in_channels to the '
                f'backbone width, and check that '
                f'model.data_preprocessor.pad_size_divisor divides '
                f'input_size (padding to a larger multiple adds cells)')
        if self.head == 'fc':
            hidden = self.dropout(self.fc_act(self.fc(feat.flatten(1))))
            out = self.fc_out(hidden).view(-1, self.num_grids, self.num_grids,
                                           self.num_attrib)  # [N, S, S, D]
        else:
            # [N, D, S, S] -> [N, S, S, D]; row-major cells as the FC head
            out = self.conv_out(self.dropout(feat)).permute(0, 2, 3, 1)
        if self.output_act == 'sigmoid':
            out = out.sigmoid()
        return (out, )

    def _check_input_shape(self, batch_img_metas: Sequence[dict]) -> None:
        """Refuse a batch whose ``batch_input_shape`` is not ``input_size``.

        The boxes are encoded and decoded relative to the batch's input
        shape, but the head's weights were sized for ``input_size``: a 460
        px input still gives the 7 x 7 map of a 448 px one, so the forward
        pass alone would let it through.
        """
        expected = (self.input_size[1], self.input_size[0])  # (h, w)
        for meta in batch_img_metas:
            shape = tuple(meta['batch_input_shape'][:2])
            if shape != expected:
                raise ValueError(
                    f'YOLOV1Head got a batch_input_shape of {shape} (h, w) '
                    f'but its input_size is {self.input_size} (w, h): set '
                    f'model.bbox_head.input_size to the resize scale of '
                    f'the pipelines and check that '
                    f'model.data_preprocessor.pad_size_divisor divides it')

    # ----------------------------------------------------------------- loss
    def loss_by_feat(self,
                     pred: Tensor,
                     batch_gt_instances: InstanceList,
                     batch_img_metas: List[dict],
                     batch_gt_instances_ignore: OptInstanceList = None
                     ) -> Dict[str, Tensor]:
        """Weighted loss terms, diagnostics and extra objective terms.

        Args:
            pred (Tensor): Head output ``[N, S, S, B * 5 + C]``.
            batch_gt_instances (list[InstanceData]): ``bboxes`` (x1, y1, x2,
                y2 in input pixels) and ``labels`` per image.
            batch_img_metas (list[dict]): ``batch_input_shape`` per image.
            batch_gt_instances_ignore (list[InstanceData], optional): Ignored
                boxes (VOC ``difficult``); they are not trained on, as in
                darknet's VOC labels. Defaults to None.

        Returns:
            dict[str, Tensor]: The weighting's output.
        """
        # Targets, IoUs and squared errors in float32 also under AMP: the
        # IoU of float16 boxes loses the precision the obj target needs, and
        # autocast would mix float16 targets with float32 IoUs.
        pred = pred.float()
        raw = self.loss_terms(pred, batch_gt_instances, batch_img_metas)
        features = pred.mean(dim=(1, 2))  # [N, B*5+C]
        return self.weighting(raw, features=features)

    def loss_terms(self, pred: Tensor, batch_gt_instances: InstanceList,
                   batch_img_metas: List[dict]) -> Dict[str, Tensor]:
        """The four unweighted terms, each a per-image vector ``[N]``
        (each image's sum-squared error divided by ``N``)."""
        num_imgs = pred.shape[0]
        self._check_input_shape(batch_img_metas)
        obj_mask, cell_mask, box_target, conf_target, cls_target = \
            batch_yolov1_targets(pred.detach(), batch_gt_instances,
                                 batch_img_metas, self.num_boxes,
                                 self.num_classes, self.rescore,
                                 self.no_overlap)
        boxes = pred[..., :self.num_boxes * 5].reshape(
            *pred.shape[:3], self.num_boxes, 5)  # [N, S, S, B, 5]
        conf = boxes[..., 4]  # [N, S, S, B]
        cls_prob = pred[..., self.num_boxes * 5:]  # [N, S, S, C]
        # Masks multiply instead of index, so an image without objects still
        # puts every output in the graph (DDP) and gives exact zeros.
        coord = (obj_mask[..., None] *
                 (boxes[..., :4] - box_target[..., None, :])**2).sum(
                     dim=(1, 2, 3, 4))
        obj = (obj_mask * (conf - conf_target)**2).sum(dim=(1, 2, 3))
        noobj = ((1 - obj_mask) * conf**2).sum(dim=(1, 2, 3))
        pred_term = (cell_mask[..., None] * (cls_prob - cls_target)**2).sum(
            dim=(1, 2, 3))
        return dict(
            loss_coord=coord / num_imgs,
            loss_pred=pred_term / num_imgs,
            loss_obj=obj / num_imgs,
            loss_noobj=noobj / num_imgs)

    # -------------------------------------------------------------- predict
    def predict_by_feat(self,
                        pred: Tensor,
                        batch_img_metas: List[dict],
                        cfg: OptConfigType = None,
                        rescale: bool = False,
                        with_nms: bool = True) -> InstanceList:
        """Decode ``[N, S, S, B * 5 + C]`` into boxes per image.

        Scores are the class-specific confidences ``Pr(class | object) *
        confidence`` of every box and class (negative linear outputs count
        as 0), thresholded at ``score_thr`` and suppressed per class.

        Args:
            pred (Tensor): Head output.
            batch_img_metas (list[dict]): ``batch_input_shape``,
                ``img_shape`` and, with ``rescale``, ``scale_factor``.
            cfg (dict, optional): Test config; None uses ``test_cfg``.
                Defaults to None.
            rescale (bool): Return boxes in the original image scale.
                Defaults to False.
            with_nms (bool): Apply per-class NMS. Defaults to True.

        Returns:
            list[InstanceData]: ``bboxes``, ``scores``, ``labels`` per image.
        """
        cfg = ConfigDict(copy.deepcopy(self.test_cfg if cfg is None else cfg))
        self._check_input_shape(batch_img_metas)
        S, B = self.num_grids, self.num_boxes
        rows, cols = torch.meshgrid(
            torch.arange(S, device=pred.device, dtype=pred.dtype),
            torch.arange(S, device=pred.device, dtype=pred.dtype),
            indexing='ij')
        results_list = []
        for out, img_meta in zip(pred, batch_img_metas):
            boxes = out[..., :B * 5].reshape(S, S, B, 5)
            height, width = img_meta['batch_input_shape'][:2]
            cx = (cols[..., None] + boxes[..., 0]) / S * width  # [S, S, B]
            cy = (rows[..., None] + boxes[..., 1]) / S * height
            w = boxes[..., 2]**2 * width
            h = boxes[..., 3]**2 * height
            bboxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2,
                                  cy + h / 2], dim=-1).reshape(-1, 4)
            img_h, img_w = img_meta['img_shape'][:2]
            bboxes[:, 0::2] = bboxes[:, 0::2].clamp(0, img_w)
            bboxes[:, 1::2] = bboxes[:, 1::2].clamp(0, img_h)
            conf = boxes[..., 4].clamp(min=0)  # [S, S, B]
            cls_prob = out[..., B * 5:].clamp(min=0)  # [S, S, C]
            scores = (conf[..., None] * cls_prob[:, :, None, :]).reshape(
                -1, self.num_classes)  # [S*S*B, C]
            nms_pre = cfg.get('nms_pre', -1)
            if nms_pre is None or nms_pre <= 0:
                nms_pre = scores.numel()
            scores, labels, _, kept = filter_scores_and_topk(
                scores, cfg.get('score_thr', 0), nms_pre, dict(bboxes=bboxes))
            results = InstanceData(
                scores=scores, labels=labels, bboxes=kept['bboxes'])
            results_list.append(
                self._bbox_post_process(
                    results=results,
                    cfg=cfg,
                    rescale=rescale,
                    with_nms=with_nms,
                    img_meta=img_meta))
        return results_list
