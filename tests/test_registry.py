# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""``import mmdet_slf`` registers the package into mmdet's registries."""
import inspect
import subprocess
import sys

import torch

from conftest import REPO_ROOT


def _registered_classes():
    """Every public ``nn.Module`` / hook class defined in mmdet_slf."""
    import mmdet_slf
    from mmengine.hooks import Hook
    found = {}
    for module_name, module in list(sys.modules.items()):
        if not module_name.startswith('mmdet_slf') or module is None:
            continue
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and obj.__module__ == module_name and \
                    not name.startswith('_') and issubclass(
                        obj, (torch.nn.Module, Hook)) and \
                    not name.startswith('Base'):
                found[name] = obj
    assert mmdet_slf.__version__
    return found


def test_every_module_is_registered():
    from mmdet.registry import HOOKS, MODELS
    from mmengine.registry import MODEL_WRAPPERS
    classes = _registered_classes()
    for name in ('SLFWeighting', 'FixedWeighting', 'UncertaintyWeighting',
                 'DWAWeighting', 'RandomWeighting', 'SLFDecisionNetwork',
                 'SLFLoss', 'SLFLoggerHook'):
        assert name in classes
    for name, cls in classes.items():
        registry = HOOKS if 'Hook' in name else MODELS
        if name in MODEL_WRAPPERS.module_dict:
            # mmengine's Runner looks wrappers up in its own registry.
            registry = MODEL_WRAPPERS
        assert registry.get(name) is cls, f'{name} is not in {registry.name}'


def test_fresh_interpreter_import_registers():
    code = ('import mmdet_slf; from mmdet.registry import MODELS, HOOKS; '
            'print(MODELS.get("SLFWeighting").__name__, '
            'HOOKS.get("SLFLoggerHook").__name__)')
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT,
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ['SLFWeighting', 'SLFLoggerHook']


def _run_python(code: str) -> str:
    result = subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_import_leaves_ssd_head_untouched():
    """mmdet's SSDHead is the same class, with the same attributes, before
    and after ``import mmdet_slf``; the fix is the opt-in
    ``PredictableSSDHead``."""
    code = '\n'.join([
        'from mmdet.models.dense_heads import SSDHead',
        'from mmdet.registry import MODELS',
        'before = (dict(vars(SSDHead)), SSDHead.__init__)',
        'import mmdet_slf',
        'from mmdet.models import dense_heads',
        'assert dense_heads.SSDHead is SSDHead',
        'assert MODELS.get("SSDHead") is SSDHead',
        'assert (dict(vars(SSDHead)), SSDHead.__init__) == before',
        'assert "loss_cls" not in vars(SSDHead)',
        'assert issubclass(MODELS.get("PredictableSSDHead"), SSDHead)',
        'print("ok")',
    ])
    assert _run_python(code).split() == ['ok']


def test_import_adds_no_opencv():
    """No module of mmdet_slf imports OpenCV: ``cv2`` is loaded after
    ``import mmdet_slf`` exactly when mmdet itself loads it, and no
    ``mmdet_slf`` module asks for it while the package is imported."""
    baseline = ('import sys, mmdet.models, mmdet.engine, mmdet.registry; '
                'print("cv2" in sys.modules)')
    ours = 'import sys, mmdet_slf; print("cv2" in sys.modules)'
    assert _run_python(ours) == _run_python(baseline)
    # Make mmdet import first, then forget cv2 and record who asks for it
    # again while mmdet_slf is imported.
    code = '\n'.join([
        'import sys',
        'import mmdet.models, mmdet.engine, mmdet.registry',
        'for name in [n for n in sys.modules if n.split(".")[0] == "cv2"]:',
        '    del sys.modules[name]',
        'askers = []',
        'class Recorder:',
        '    def find_spec(self, name, path=None, target=None):',
        '        if name.split(".")[0] == "cv2":',
        '            frame = sys._getframe(1)',
        '            while frame and frame.f_globals.get("__name__", "")'
        '.startswith(("importlib", "_frozen")):',
        '                frame = frame.f_back',
        '            askers.append(frame.f_globals.get("__name__"))',
        '        return None',
        'sys.meta_path.insert(0, Recorder())',
        'import mmdet_slf',
        'print(sorted(set(a for a in askers if a and',
        '                 a.startswith("mmdet_slf"))))',
    ])
    assert _run_python(code).split() == ['[]']
