#!/usr/bin/env bash
# One device call: the CUDA-graph tests, then the weightings' host cost
# with and without graphs. No mmcv build: the weightings need no mmcv op.
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
SITE=/tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --target "$SITE" .whl/*.whl || exit 1
mkdir -p /tmp/mmcv && tar -xzf .whl/mmcv-2.1.0.tar.gz -C /tmp/mmcv
# mmcv's ops unbuilt: every op exists and raises when called (YOLO and the
# weightings call none)
cp work_dirs/device/mmcv_ext_stub.py /tmp/mmcv/mmcv-2.1.0/mmcv/_ext.py
if ! python3 -c "from distutils import errors" >/dev/null 2>&1; then
    mkdir -p "$SITE/distutils"
    printf 'import importlib\nimport sys\nsys.modules[__name__] = importlib.import_module("setuptools._distutils")\n' \
        >"$SITE/distutils/__init__.py"
fi
export PYTHONPATH=$PWD:/tmp/mmcv/mmcv-2.1.0:$SITE PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import torch; print(torch.__version__)"
git log -1 --format=%H 2>/dev/null
cat .commit 2>/dev/null
echo "== tests"
timeout 240 python3 -c "
import sys
sys.path.insert(0, 'tools')
import weighting_host_cost
weighting_host_cost.import_weightings()
import pytest
sys.exit(pytest.main(['-v', '-s', '-rs', '-p', 'no:cacheprovider',
                      'tests/test_slf/test_cuda_graph.py']))
" >"$OUT/tests.log" 2>&1
echo "tests rc $?"
grep -E "passed|failed|host operators|PASSED|FAILED" "$OUT/tests.log" | cut -c1-150 | tail -40
grep -E "^E  |^____" "$OUT/tests.log" | head -40 | cut -c1-300
echo "== host cost"
timeout 110 python3 tools/weighting_host_cost.py --device cuda --rounds 200 \
    --steps 20 --warmup 100 --out "$OUT/host_cost_retinanet.json" 2>&1 \
    | grep -v Warn | tail -15
echo "rc $?"
timeout 110 python3 tools/weighting_host_cost.py --device cuda \
    --terms coord pred obj noobj --images 64 --rounds 200 --steps 20 \
    --warmup 100 --out "$OUT/host_cost_yolo.json" 2>&1 | grep -v Warn \
    | tail -15
echo "rc $?"
echo "== YOLO training steps"
step() {
    name=$1; shift
    timeout 100 python3 tools/benchmark_fps.py "$@" --same-weights --train \
        --device cuda --warmup 10 --count-ops --log-reads \
        --out "$OUT/step_$name.json" >"$OUT/step_$name.log" 2>&1
    echo "$name rc $?"
    grep -E "ms per step|paired by round|second - first|capturing|Error" \
        "$OUT/step_$name.log" | cut -c1-240
}
# the graphs are opt-in: yolo_slf_graph.py turns them on
GRAPH=work_dirs/device/yolo_slf_graph.py
step yolo_b2_fixed_graph configs/yolo_voc.py --compare $GRAPH \
    --batch-size 2 --num-iters 100
step yolo_b2_eager_graph work_dirs/device/yolo_slf_eager.py \
    --compare $GRAPH --batch-size 2 --num-iters 100
step yolo_b2_fixed_graph_amp configs/yolo_voc.py \
    --compare $GRAPH --batch-size 2 --num-iters 60 --fp16
