# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The temperature schedule against values worked out by hand."""
import math

import pytest
import torch

from mmdet_slf.slf import check_temperature_schedule, scheduled_temperature

# start 2.0 -> final 0.5 over 10 calls; progress t = min(step / 10, 1).
HAND = {
    # 2 * 0.25 ** t
    'exp': {0: 2.0, 2: 2.0 * 0.25**0.2, 5: 1.0, 10: 0.5, 30: 0.5},
    # 2 - 1.5 t
    'linear': {0: 2.0, 2: 1.7, 5: 1.25, 10: 0.5, 30: 0.5},
    # 0.5 + 0.75 (1 + cos(pi t))
    'cosine': {0: 2.0, 2: 0.5 + 0.75 * (1 + math.cos(0.2 * math.pi)),
               5: 1.25, 10: 0.5, 30: 0.5},
}


@pytest.mark.parametrize('kind', sorted(HAND))
def test_schedule_hand_values(kind):
    for step, expected in HAND[kind].items():
        tau = scheduled_temperature(2.0, 0.5, 10, kind, step)
        assert tau.item() == pytest.approx(expected, rel=1e-6), (kind, step)


def test_schedule_reads_a_long_buffer_without_leaving_its_device():
    step = torch.tensor(5, dtype=torch.long)
    tau = scheduled_temperature(2.0, 0.5, 10, 'linear', step)
    assert isinstance(tau, torch.Tensor) and tau.device == step.device
    assert tau.item() == pytest.approx(1.25)


def test_cosine_midpoint_is_the_mean_and_exp_is_geometric():
    # Symmetries that hold for any start/final.
    start, final = 3.0, 0.3
    mid = scheduled_temperature(start, final, 8, 'cosine', 4).item()
    assert mid == pytest.approx((start + final) / 2)
    mid = scheduled_temperature(start, final, 8, 'exp', 4).item()
    assert mid == pytest.approx(math.sqrt(start * final))


@pytest.mark.parametrize('schedule, match', [
    (dict(type='step', final=0.5, num_iters=10), 'temperature_schedule.type'),
    (dict(type='exp', final=0.0, num_iters=10), 'temperature_schedule.final'),
    (dict(type='exp', final=0.5, num_iters=0),
     'temperature_schedule.num_iters'),
    (dict(type='exp', final=0.5, num_iters=10, start=2.0), 'unknown keys'),
])
def test_bad_schedules_name_the_key(schedule, match):
    with pytest.raises(ValueError, match=match):
        check_temperature_schedule(schedule)
    assert check_temperature_schedule(None) is None
