# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""``tools/gpu_check_cuda.py``: finding the CUDA toolkit, its libraries'
headers and ``libcudart.so`` for the mmcv build, on fake toolkits laid out
as a system install and as pip's ``nvidia-*`` wheels lay them out."""
import json
import os
import os.path as osp
import sys

from conftest import REPO_ROOT

sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))
import gpu_check  # noqa: E402
import gpu_check_cuda  # noqa: E402


def touch(path, text=''):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)
    return path


def toolkit(root, headers=('cuda_runtime.h', )):
    touch(osp.join(root, 'bin', 'nvcc'))
    for header in headers:
        touch(osp.join(root, 'include', header))
    return str(root)


def test_cuda_home_is_the_first_root_with_nvcc_and_the_runtime_header(
        tmp_path, monkeypatch):
    no_header = toolkit(tmp_path / 'bare', headers=())
    full = toolkit(tmp_path / 'full')
    monkeypatch.setenv('CUDA_HOME', no_header)
    monkeypatch.setenv('CUDA_PATH', full)
    monkeypatch.setenv('PATH', '')
    assert gpu_check_cuda.find_cuda_home() == osp.realpath(full)


def test_a_wrapper_script_on_path_names_its_toolkit(tmp_path, monkeypatch):
    """``nvcc`` on PATH may be a one-line script that execs the real one,
    whose toolkit is then a candidate."""
    real = toolkit(tmp_path / 'cuda-13.0')
    wrapper = touch(str(tmp_path / 'bin' / 'nvcc'),
                    f'#!/bin/sh\nexec {real}/bin/nvcc "$@"\n')
    os.chmod(wrapper, 0o755)
    monkeypatch.delenv('CUDA_HOME', raising=False)
    monkeypatch.delenv('CUDA_PATH', raising=False)
    monkeypatch.setenv('PATH', str(tmp_path / 'bin'))
    roots = gpu_check_cuda._nvcc_candidates()
    assert roots[:2] == [str(tmp_path), real]
    assert gpu_check_cuda.find_cuda_home() == osp.realpath(real)


def test_missing_library_headers_are_found_in_the_nvidia_wheels(
        tmp_path, monkeypatch):
    home = toolkit(tmp_path / 'cuda',
                   headers=('cuda_runtime.h', 'cusparse.h', 'cublas_v2.h'))
    site = tmp_path / 'site'
    cublas = touch(str(site / 'nvidia' / 'cublas' / 'include' / 'cublasLt.h'))
    # a second copy in a later site dir is not taken
    touch(str(tmp_path / 'site2' / 'nvidia' / 'cublas' / 'include' /
              'cublasLt.h'))
    cusolver = touch(str(site / 'nvidia' / 'include' / 'cusolverDn.h'))
    monkeypatch.setattr(gpu_check_cuda, '_site_dirs',
                        lambda: [str(site), str(tmp_path / 'site2')])
    missing, found = gpu_check_cuda.find_library_includes(home)
    assert missing == ['cublasLt.h', 'cusolverDn.h']
    assert found == [osp.dirname(cublas), osp.dirname(cusolver)]
    # without a toolkit every header is missing
    assert gpu_check_cuda.find_library_includes(None)[0] == list(
        gpu_check_cuda.LIBRARY_HEADERS)


def test_cudart_link_only_where_the_toolkit_lacks_libcudart_so(
        tmp_path, monkeypatch):
    home = toolkit(tmp_path / 'cuda')
    versioned = touch(osp.join(home, 'lib64', 'libcudart.so.13'))
    monkeypatch.setattr(gpu_check_cuda, '_site_dirs', lambda: [])
    work = str(tmp_path / 'link')
    assert gpu_check_cuda.find_cudart_dir(home, work) == work
    assert os.readlink(osp.join(work, 'libcudart.so')) == versioned
    # a link left by an earlier call is replaced
    assert gpu_check_cuda.find_cudart_dir(home, work) == work
    touch(osp.join(home, 'lib64', 'libcudart.so'))
    assert gpu_check_cuda.find_cudart_dir(home, str(tmp_path / 'no')) is None
    assert not osp.exists(tmp_path / 'no')
    assert gpu_check_cuda.find_cudart_dir(None, work) is None


def test_cuda_env_exports_the_toolkit_it_found(tmp_path, monkeypatch,
                                               capsys):
    home = toolkit(tmp_path / 'cuda')
    monkeypatch.setenv('CUDA_HOME', home)
    monkeypatch.setattr(gpu_check_cuda, '_site_dirs', lambda: [])
    out = tmp_path / 'env.json'
    gpu_check.main(['cuda-env', '--json', str(out), '--jobs', '3',
                    '--lib-dir', str(tmp_path / 'lib')])
    info = json.loads(out.read_text())
    assert info['cuda_home'] == osp.realpath(home)
    assert info['headers_missing_in_toolkit'] == list(
        gpu_check_cuda.LIBRARY_HEADERS)
    exports = info['exports']
    assert exports['CUDA_HOME'] == osp.realpath(home)
    assert exports['MAX_JOBS'] == '3'
    assert osp.join(osp.realpath(home), 'bin') in exports['PATH'].split(':')
    printed = capsys.readouterr().out.splitlines()
    assert f'export CUDA_HOME={osp.realpath(home)}' in printed
    assert 'export FORCE_CUDA=1' in printed


def test_cuda_env_exports_every_include_dir_of_the_wheels(
        tmp_path, monkeypatch):
    """Headers found in two wheels: both directories go into CPATH, before
    the CPATH already set, and into MMCV_CUDA_ARGS as -I flags, in the
    order of LIBRARY_HEADERS (cusparse, then cublas_v2)."""
    home = toolkit(tmp_path / 'cuda',
                   headers=('cuda_runtime.h', 'cublasLt.h', 'cusolverDn.h'))
    site = tmp_path / 'site'
    sparse = osp.dirname(touch(str(site / 'nvidia' / 'cusparse' /
                                   'include' / 'cusparse.h')))
    blas = osp.dirname(touch(str(site / 'nvidia' / 'cublas' / 'include' /
                                 'cublas_v2.h')))
    monkeypatch.setenv('CUDA_HOME', home)
    monkeypatch.setenv('CPATH', '/old')
    monkeypatch.setattr(gpu_check_cuda, '_site_dirs', lambda: [str(site)])
    out = tmp_path / 'env.json'
    gpu_check.main(['cuda-env', '--json', str(out), '--lib-dir',
                    str(tmp_path / 'lib')])
    exports = json.loads(out.read_text())['exports']
    assert exports['CPATH'] == f'{sparse}:{blas}:/old'
    assert exports['MMCV_CUDA_ARGS'] == f'-I{sparse} -I{blas}'


def test_cudart_link_goes_to_the_soname(tmp_path, monkeypatch):
    """Of libcudart.so.13 and libcudart.so.13.0.48 the first in sorted
    order, the soname the linker records, is linked."""
    home = toolkit(tmp_path / 'cuda')
    soname = touch(osp.join(home, 'lib64', 'libcudart.so.13'))
    touch(osp.join(home, 'lib64', 'libcudart.so.13.0.48'))
    monkeypatch.setattr(gpu_check_cuda, '_site_dirs', lambda: [])
    work = str(tmp_path / 'link')
    assert gpu_check_cuda.find_cudart_dir(home, work) == work
    assert os.readlink(osp.join(work, 'libcudart.so')) == soname
