# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""mmdet's YOLOv3 head with its loss split into YOLO's four roles and
weighted through a loss-weighting module (fixed lambdas or SLF)."""
import copy
from typing import Dict, List, Sequence, Tuple

import torch
from mmdet.models.dense_heads import YOLOV3Head
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, InstanceList, OptInstanceList
from torch import Tensor

from mmdet_slf.slf import build_weighting

# The loss modules of YOLOV3Head, each computing part of a raw term.
LOSS_MODULES = ('loss_cls', 'loss_conf', 'loss_xy', 'loss_wh')


@MODELS.register_module()
class YOLOV3SLFHead(YOLOV3Head):
    """:class:`~mmdet.models.dense_heads.YOLOV3Head` with weighted loss roles.

    Only the loss path changes, as MMYOLO's ``YOLOv7Head`` does over
    ``YOLOv5Head``: :meth:`loss_by_feat` returns a dict of losses like the
    parent's, and every other method, ``loss_by_feat_single`` included, is
    the parent's. mmdet's ``loss_conf`` is split into ``loss_obj`` (positive
    anchors) and ``loss_noobj`` (negative anchors), giving YOLOv1's four
    roles ``TERMS``: ``coord = loss_xy + loss_wh``, ``pred = loss_cls``,
    ``obj`` and ``noobj``. Each is a raw, unweighted per-image vector ``[N]``
    whose sum is mmdet's batch-level term (the losses use
    ``reduction='sum'``, checked at build), and ``self.weighting`` is the
    only place weights are applied: the loss modules must keep
    ``loss_weight=1`` (checked at build).
    ``FixedWeighting(weights=[2, 1, 1, 1])`` gives mmdet's YOLOv3 loss
    (``loss_xy``/``loss_wh`` weight 2, the others 1).

    Decision features: per-image mean over all anchors of all levels of the
    activated prediction (sigmoid of x, y, confidence and classes; raw w, h),
    ``[N, 5 + C]``. An ``SLFWeighting`` config without ``in_channels`` gets
    ``in_channels = 5 + num_classes``; ``in_channels=None`` makes the
    decision network read the detached raw terms.

    Args:
        *args: Positional arguments of :class:`YOLOV3Head`.
        weighting (dict): Weighting config; its ``terms`` default to
            ``TERMS``. Defaults to ``FixedWeighting`` with all weights 1.
        **kwargs: Keyword arguments of :class:`YOLOV3Head`.
    """

    TERMS = ('coord', 'pred', 'obj', 'noobj')

    def __init__(self,
                 *args,
                 weighting: ConfigType = dict(type='FixedWeighting'),
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        scaled = [
            f'{name}.loss_weight={getattr(self, name).loss_weight}'
            for name in LOSS_MODULES
            if getattr(self, name).loss_weight != 1
        ]
        if scaled:
            raise ValueError(
                f'YOLOV3SLFHead applies every weight in its weighting, but '
                f'{", ".join(scaled)}: set loss_weight=1.0 there and put the '
                'weight in weighting (mmdet\'s YOLOv3 loss is '
                "dict(type='FixedWeighting', weights=[2, 1, 1, 1]))")
        # The terms are per-image sums of the element-wise losses, which is
        # mmdet's term only where its loss modules sum too. A loss without
        # a reduction (SLFLoss) would weight inside a weighted term.
        unreduced = [
            f'{name} ({type(getattr(self, name)).__name__})'
            for name in LOSS_MODULES
            if not hasattr(getattr(self, name), 'reduction')
        ]
        if unreduced:
            raise ValueError(
                f'YOLOV3SLFHead weights its four terms itself and sums '
                f'element-wise losses per image, but {", ".join(unreduced)} '
                "has no reduction: use mmdet's loss modules with "
                "reduction='sum' there")
        averaged = [
            f'{name}.reduction={getattr(self, name).reduction!r}'
            for name in LOSS_MODULES
            if getattr(getattr(self, name), 'reduction', 'sum') != 'sum'
        ]
        if averaged:
            raise ValueError(
                f'YOLOV3SLFHead sums each loss per image, but '
                f'{", ".join(averaged)}: set reduction=\'sum\' there (as '
                "mmdet's YOLOv3 configs do), the only reduction whose batch "
                'term the per-image sums reproduce')
        self.weighting = build_weighting(
            copy.deepcopy(weighting), self.TERMS, self.num_attrib,
            'YOLOV3SLFHead')

    def loss_by_feat(
            self,
            pred_maps: Sequence[Tensor],
            batch_gt_instances: InstanceList,
            batch_img_metas: List[dict],
            batch_gt_instances_ignore: OptInstanceList = None) -> dict:
        """Weighted ``loss_coord``, ``loss_pred``, ``loss_obj``,
        ``loss_noobj``, extra objective terms and diagnostics.

        Args:
            pred_maps (list[Tensor]): ``[N, A * (5 + C), H, W]`` per level.
            batch_gt_instances (list[InstanceData]): Ground truth per image.
            batch_img_metas (list[dict]): Meta information per image.
            batch_gt_instances_ignore (list[InstanceData], optional): Unused,
                as in mmdet's head. Defaults to None.

        Returns:
            dict[str, Tensor]: The weighting's output.
        """
        raw, features = self.loss_terms(pred_maps, batch_gt_instances,
                                        batch_img_metas)
        return self.weighting(raw, features=features)

    def loss_terms(self, pred_maps: Sequence[Tensor],
                   batch_gt_instances: InstanceList,
                   batch_img_metas: List[dict]) -> Tuple[Dict, Tensor]:
        """Raw per-image terms ``{'loss_<term>': [N]}`` and decision features
        ``[N, 5 + C]``. Targets are mmdet's (``get_targets``)."""
        num_imgs = len(batch_img_metas)
        device = pred_maps[0].device
        featmap_sizes = [pred_map.shape[-2:] for pred_map in pred_maps]
        mlvl_anchors = self.prior_generator.grid_priors(
            featmap_sizes, device=device)
        anchor_list = [mlvl_anchors for _ in range(num_imgs)]
        responsible_flag_list = [
            self.responsible_flags(featmap_sizes, gt.bboxes, device)
            for gt in batch_gt_instances
        ]
        target_maps_list, neg_maps_list = self.get_targets(
            anchor_list, responsible_flag_list, batch_gt_instances)

        raw = {f'loss_{name}': 0 for name in self.TERMS}
        summaries = []
        for pred_map, target_map, neg_map in zip(pred_maps, target_maps_list,
                                                 neg_maps_list):
            terms, summary = self._level_terms(pred_map, target_map, neg_map)
            for key, value in terms.items():
                raw[key] = raw[key] + value
            summaries.append(summary)
        features = torch.cat(summaries, dim=1).mean(dim=1)  # [N, 5+C]
        return raw, features

    def _level_terms(self, pred_map: Tensor, target_map: Tensor,
                     neg_map: Tensor) -> Tuple[Dict, Tensor]:
        """Per-image raw terms of one level and its activated prediction.

        Args:
            pred_map (Tensor): ``[N, A * (5 + C), H, W]``.
            target_map (Tensor): ``[N, H * W * A, 5 + C]``.
            neg_map (Tensor): ``[N, H * W * A]`` negative flags.

        Returns:
            tuple[dict, Tensor]: ``{'loss_<term>': [N]}`` and the activated
            prediction ``[N, H * W * A, 5 + C]`` for the decision features.
        """
        num_imgs = len(pred_map)
        pred_map = pred_map.permute(0, 2, 3, 1).reshape(
            num_imgs, -1, self.num_attrib)  # [N, HWA, 5+C]
        pos_mask = target_map[..., 4]  # [N, HWA]
        # mmdet clamps pos + neg to 1 where they overlap: the overlap counts
        # as positive only, so obj + noobj equals mmdet's loss_conf. (With
        # GridAssigner and the pseudo sampler no anchor is both.)
        neg_mask = neg_map.float() * (1 - pos_mask)

        def per_image(loss: Tensor) -> Tensor:
            return loss.reshape(num_imgs, -1).sum(dim=1)  # [N]

        none = dict(reduction_override='none')
        terms = dict(
            loss_coord=per_image(
                self.loss_xy(
                    pred_map[..., :2],
                    target_map[..., :2],
                    weight=pos_mask[..., None],
                    **none)) + per_image(
                        self.loss_wh(
                            pred_map[..., 2:4],
                            target_map[..., 2:4],
                            weight=pos_mask[..., None],
                            **none)),
            loss_pred=per_image(
                self.loss_cls(
                    pred_map[..., 5:],
                    target_map[..., 5:],
                    weight=pos_mask[..., None],
                    **none)),
            loss_obj=per_image(
                self.loss_conf(
                    pred_map[..., 4], target_map[..., 4], weight=pos_mask,
                    **none)),
            loss_noobj=per_image(
                self.loss_conf(
                    pred_map[..., 4], target_map[..., 4], weight=neg_mask,
                    **none)))
        summary = torch.cat([
            pred_map[..., :2].sigmoid(), pred_map[..., 2:4],
            pred_map[..., 4:].sigmoid()
        ], dim=-1)
        return terms, summary
