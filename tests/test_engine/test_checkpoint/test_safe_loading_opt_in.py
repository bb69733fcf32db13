# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""``import mmdet_slf`` leaves mmengine's checkpoint loader and torch's
weights-only allow-list alone; a project config switches safe loading on."""
import json
import os.path as osp
import subprocess
import sys

from conftest import REPO_ROOT

# Runs in a fresh interpreter: this pytest process has long been switched.
PROBE = r'''
import json, sys
import torch
from mmengine.config import Config
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

def state():
    loader = CheckpointLoader._schemes['']
    return dict(loader=f'{loader.__module__}.{loader.__name__}',
                history_buffer_allowed=HistoryBuffer in
                torch.serialization.get_safe_globals())

states = dict(start=state())
import mmdet_slf
import mmdet_slf.engine.checkpoint  # the package itself, not the opt-in
states['import mmdet_slf'] = state()
Config.fromfile(sys.argv[1])  # a user's config: custom_imports mmdet_slf
states['plain config'] = state()
Config.fromfile(sys.argv[2])  # a project config
states['project config'] = state()
print(json.dumps(states))
'''

MMENGINE = dict(loader='mmengine.runner.checkpoint.load_from_local',
                history_buffer_allowed=False)
SAFE = dict(loader='mmdet_slf.engine.checkpoint.safe_load.load_from_local',
            history_buffer_allowed=True)


def test_import_leaves_the_loader_until_a_config_opts_in(tmp_path):
    plain = tmp_path / 'plain.py'
    plain.write_text(
        "custom_imports = dict(imports=['mmdet_slf'], "
        'allow_failed_imports=False)\n')
    project = osp.join(REPO_ROOT, 'configs', 'fast-yolo_slf_voc.py')
    result = subprocess.run(
        [sys.executable, '-c', PROBE, str(plain), project],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    states = json.loads(result.stdout.strip().splitlines()[-1])
    assert states == {
        'start': MMENGINE,
        'import mmdet_slf': MMENGINE,
        'plain config': MMENGINE,
        'project config': SAFE,
    }
