# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The ``cuda-env`` half of ``tools/gpu_check.py``: where the CUDA toolkit,
the headers of its libraries and ``libcudart.so`` are on a machine, and the
exports that build mmcv's CUDA ops against them. A pip-installed CUDA (the
``nvidia-*`` wheels) keeps its headers and libraries in ``site-packages``,
where mmcv's build does not look."""
import glob
import json
import os
import os.path as osp
import re
import shlex
import shutil
import subprocess
import sys

# Headers that ATen/cuda/CUDAContext.h includes beyond the CUDA runtime.
LIBRARY_HEADERS = ('cusparse.h', 'cublas_v2.h', 'cublasLt.h', 'cusolverDn.h')


def _nvcc_candidates():
    """CUDA roots that may hold the nvcc on PATH (following symlinks and
    one-line wrapper scripts such as
    ``exec /usr/local/cuda-13.0/bin/nvcc``)."""
    roots = []
    for var in ('CUDA_HOME', 'CUDA_PATH'):
        if os.environ.get(var):
            roots.append(os.environ[var])
    nvcc = shutil.which('nvcc')
    if nvcc:
        real = osp.realpath(nvcc)
        roots.append(osp.dirname(osp.dirname(real)))
        try:
            with open(real, 'rb') as f:
                head = f.read(4096)
            if head.startswith(b'#!'):
                for match in re.finditer(rb'(/[^\s"\']+)/bin/nvcc', head):
                    roots.append(match.group(1).decode())
        except OSError:
            pass
    roots += ['/usr/local/cuda'] + sorted(glob.glob('/usr/local/cuda-*'),
                                          reverse=True)
    return roots


def find_cuda_home():
    for root in _nvcc_candidates():
        if osp.isfile(osp.join(root, 'bin', 'nvcc')) and osp.isfile(
                osp.join(root, 'include', 'cuda_runtime.h')):
            return osp.realpath(root)
    return None


def _site_dirs():
    dirs = [p for p in sys.path if p and osp.isdir(p)]
    try:
        import site
        dirs += site.getsitepackages()
    except AttributeError:
        pass
    return list(dict.fromkeys(dirs))


def find_library_includes(cuda_home):
    """Include dirs for cuSPARSE/cuBLAS/cuSOLVER headers when the toolkit has
    none (pip-installed CUDA: they ship in the nvidia-* wheels)."""
    missing = [
        h for h in LIBRARY_HEADERS
        if not (cuda_home and osp.isfile(osp.join(cuda_home, 'include', h)))
    ]
    found = []
    for header in missing:
        for site_dir in _site_dirs():
            hits = glob.glob(osp.join(site_dir, 'nvidia', '*', 'include',
                                      header)) + glob.glob(
                osp.join(site_dir, 'nvidia', 'include', header))
            for hit in hits:
                found.append(osp.dirname(hit))
            if hits:
                break
    return missing, list(dict.fromkeys(found))


def find_cudart_dir(cuda_home, work_dir):
    """A directory with ``libcudart.so`` for ``-lcudart``; a symlink to the
    versioned library is made in ``work_dir`` when only that exists."""
    lib_dirs = [osp.join(cuda_home, d) for d in ('lib64', 'lib')] \
        if cuda_home else []
    for d in lib_dirs:
        if osp.exists(osp.join(d, 'libcudart.so')):
            return None  # torch's CUDAExtension already links from here
    candidates = []
    for d in lib_dirs:
        candidates += glob.glob(osp.join(d, 'libcudart.so.*'))
    for site_dir in _site_dirs():
        candidates += glob.glob(
            osp.join(site_dir, 'nvidia', '*', 'lib', 'libcudart.so*'))
    if not candidates:
        return None
    os.makedirs(work_dir, exist_ok=True)
    link = osp.join(work_dir, 'libcudart.so')
    if osp.lexists(link):
        os.remove(link)
    os.symlink(sorted(candidates)[0], link)
    return work_dir


def cmd_cuda_env(args):
    import torch
    info = dict(
        python=sys.version.split()[0],
        torch=torch.__version__,
        torch_cuda=torch.version.cuda,
        cuda_available=torch.cuda.is_available())
    exports = {}
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(0)
        info['gpu'] = torch.cuda.get_device_name(0)
        info['capability'] = f'{major}.{minor}'
        exports['TORCH_CUDA_ARCH_LIST'] = f'{major}.{minor}'
    cuda_home = find_cuda_home()
    info['cuda_home'] = cuda_home
    if cuda_home:
        exports['CUDA_HOME'] = cuda_home
    missing, includes = find_library_includes(cuda_home)
    info['headers_missing_in_toolkit'] = missing
    info['extra_include_dirs'] = includes
    cudart_dir = find_cudart_dir(cuda_home, args.lib_dir)
    info['cudart_link_dir'] = cudart_dir
    path = [osp.dirname(sys.executable)]  # ninja of this environment
    try:  # the ninja wheel keeps its binary in the package
        import ninja
        path.append(ninja.BIN_DIR)
    except (ImportError, AttributeError):
        pass
    if cuda_home:
        path.append(osp.join(cuda_home, 'bin'))
    exports['PATH'] = ':'.join(path + [os.environ.get('PATH', '')])
    if includes:
        exports['CPATH'] = ':'.join(
            includes + [p for p in [os.environ.get('CPATH')] if p])
        exports['MMCV_CUDA_ARGS'] = ' '.join(f'-I{d}' for d in includes)
    if cudart_dir:
        exports['LIBRARY_PATH'] = ':'.join(
            [cudart_dir] + [p for p in [os.environ.get('LIBRARY_PATH')] if p])
    exports['MAX_JOBS'] = str(args.jobs or os.cpu_count() or 4)
    exports['MMCV_WITH_OPS'] = '1'
    exports['FORCE_CUDA'] = '1'
    for tool, cmd in (('nvcc', ['nvcc', '--version']),
                      ('gcc', ['gcc', '--version']),
                      ('ninja', ['ninja', '--version'])):
        exe = shutil.which(cmd[0], path=exports['PATH'])
        try:
            out = subprocess.run([exe or cmd[0]] + cmd[1:],
                                 capture_output=True, text=True,
                                 timeout=30).stdout.strip().splitlines()
            info[tool] = out[-1] if tool == 'nvcc' else out[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            info[tool] = None
    for module in ('setuptools', 'numpy', 'cv2', 'scipy', 'matplotlib'):
        try:
            info[module] = __import__(module).__version__
        except Exception as error:  # noqa: BLE001 (reported, not raised)
            info[module] = f'missing ({error.__class__.__name__})'
    info['exports'] = exports
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(info, f, indent=2)
    for key, value in exports.items():
        print(f'export {key}={shlex.quote(value)}')
