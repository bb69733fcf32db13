#!/usr/bin/env bash
# Check the GPU path on one CUDA machine without a package index:
#
#   1. install the wheels brought along (mmengine, mmdet and the pure-Python
#      packages the machine lacks) into a target directory, and build mmcv
#      2.1.0 from its source archive with CUDA ops for the local GPU only
#      (TORCH_CUDA_ARCH_LIST of that GPU, MAX_JOBS = cores);
#   2. make a small digits set in VOC format with tools/make_demo_data.py and
#      train the YOLO and YOLO+SLF VOC configs on it for 100 iterations on
#      CUDA, with and without --amp (losses finite, SLF weights logged, a
#      checkpoint written), then reload each checkpoint on CUDA with
#      tools/test.py, which prints the VOC mAP;
#   3. time YOLO, Fast YOLO and YOLO VGG-16 at batch 1, 448 x 448, fixed
#      against SLF with the same weights, in float32 and float16
#      (tools/benchmark_fps.py);
#   4. time the training step of YOLO (float32 and --amp), RetinaNet,
#      Faster R-CNN and SSD300, each fixed-weight detector against its SLF
#      config, interleaved, with the configs' batch sizes and random boxes,
#      and count the operators one step of each dispatches
#      (tools/benchmark_fps.py --train --count-ops);
#   5. time the host time the weightings alone add to a step, with
#      RetinaNet's terms and with YOLO's (tools/weighting_host_cost.py):
#      whole steps of a host-bound detector vary too much between runs to
#      resolve a 2% cost, these do not.
#
# Every stage writes a JSON record; the merged report is $OUT/gpu_check.json,
# the logs are in $OUT/gpu_check_logs.tar.gz. A stage that fails is recorded
# and the script goes on where it can. Finished stages are remembered under
# GPU_CHECK_WORK, so a second run on the same machine (after a deadline or a
# time-out) goes on where the first stopped, as long as the commit is the
# same (another commit starts the records afresh); the mmcv build runs in its
# own process session and survives the end of the first run. The report is
# not all ok while env, install or mmcv has no record.
#
#   bash tools/gpu_check.sh
#
# Environment (all optional):
#   OUT                 report directory (default work_dirs/gpu_check)
#   GPU_CHECK_WHEELS    folder with the wheels and mmcv-2.1.0.tar.gz
#                       (default .whl in the repository root)
#   GPU_CHECK_WORK      state, build, data and runs (default /tmp/gpu_check)
#   GPU_CHECK_DEADLINE  seconds this run may take before it stops starting
#                       stages (default 540)
#   GPU_CHECK_ITERS     training iterations (default 100)
#   GPU_CHECK_FROM_HEAD 1: run the code of the last commit (git archive HEAD)
#                       instead of the working tree, when git is available
#   GPU_CHECK_FPS       0: skip the FPS stages, so that the remaining
#                       checkpoints are reloaded first (default 1)
#   GPU_CHECK_TRAIN     0: skip the data, training and reload stages
#                       (default 1)
#   GPU_CHECK_TRAIN_RUNS the training runs, in order (default "slf_fp32
#                       slf_amp fixed_fp32 fixed_amp"); also slf_gumbel_fp32
#                       and slf_gumbel_amp: the SLF config with the paper's
#                       Algorithm 1 (decision_objective='joint',
#                       estimator='gumbel'), whose Gumbel draws under --amp
#                       take the float16 logits' float32 path
#   GPU_CHECK_STEP_MODELS the training-step timings to run, by name (default
#                       all: yolo retinanet faster_rcnn ssd300 retinanet_b8)
#   GPU_CHECK_STEP      0: skip the training-step timing (default 1)
#   GPU_CHECK_STEP_ITERS timed steps of each model in that timing, after 10
#                       warm-up steps (default 50)
#   GPU_CHECK_LOG_READS 0: time model.train_step alone, without the runner's
#                       .item() read of every value it returns (default 1)
#   GPU_CHECK_PROFILE   steps of each model profiled after that timing
#                       (default 5; 0: none)
#   GPU_CHECK_HOST_COST 0: skip the weightings' host-time timing (default 1)
#   PYTHON              interpreter (default python3)
# Wheels for Python 3.12 on x86-64 Linux, from a machine with an index:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl mmengine==0.10.7 mmdet==3.3.0 addict yapf platformdirs \
#     termcolor terminaltables pycocotools shapely
#   pip download --no-deps --no-binary :all: -d .whl mmcv==2.1.0
set -u

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
OUT=${OUT:-$REPO/work_dirs/gpu_check}
WHEELS=$(cd "${GPU_CHECK_WHEELS:-$REPO/.whl}" 2>/dev/null && pwd) ||
    WHEELS=${GPU_CHECK_WHEELS:-$REPO/.whl}
WORK=${GPU_CHECK_WORK:-/tmp/gpu_check}
DEADLINE=${GPU_CHECK_DEADLINE:-540}
ITERS=${GPU_CHECK_ITERS:-100}
START=$(date +%s)
STATE=$WORK/state
LOGS=$WORK/logs
RUNS=$WORK/runs
mkdir -p "$OUT" "$STATE" "$LOGS" "$RUNS"
export PYTHONUNBUFFERED=1
export MPLBACKEND=Agg

elapsed() { echo $(($(date +%s) - START)); }
remaining() { echo $((DEADLINE - $(elapsed))); }
say() { echo "[gpu_check +$(elapsed)s] $*"; }

# ------------------------------------------------- selections, checked first
TRAIN_RUNS=${GPU_CHECK_TRAIN_RUNS-slf_fp32 slf_amp fixed_fp32 fixed_amp}
for run in $TRAIN_RUNS; do
    case $run in
    slf_fp32 | slf_amp | fixed_fp32 | fixed_amp | slf_gumbel_fp32 | slf_gumbel_amp) ;;
    *)
        say "GPU_CHECK_TRAIN_RUNS: unknown run '$run'; the runs are slf_fp32," \
            "slf_amp, fixed_fp32, fixed_amp, slf_gumbel_fp32 and slf_gumbel_amp"
        exit 2
        ;;
    esac
done
TRAIN_RUNS=$(echo $TRAIN_RUNS) # one space between names, none around
STEP_MODELS=${GPU_CHECK_STEP_MODELS-yolo retinanet faster_rcnn ssd300 retinanet_b8}
for model in $STEP_MODELS; do
    case " yolo retinanet faster_rcnn ssd300 retinanet_b8 " in
    *" $model "*) ;;
    *)
        say "GPU_CHECK_STEP_MODELS: unknown model '$model'; the models are" \
            "yolo, retinanet, faster_rcnn, ssd300 and retinanet_b8"
        exit 2
        ;;
    esac
done
STEP_MODELS=$(echo $STEP_MODELS) # one space between names, none around

# ------------------------------------------------------------------ source
SRC=$REPO
if [ "${GPU_CHECK_FROM_HEAD:-0}" = 1 ] && git -C "$REPO" rev-parse HEAD \
    >/dev/null 2>&1; then
    SRC=$WORK/src
    if [ "$(cat "$SRC/.commit" 2>/dev/null)" != \
        "$(git -C "$REPO" rev-parse HEAD)" ]; then
        rm -rf "$SRC" && mkdir -p "$SRC"
        git -C "$REPO" archive HEAD | tar -x -C "$SRC"
        git -C "$REPO" rev-parse HEAD >"$SRC/.commit"
    fi
fi
COMMIT=$(cat "$SRC/.commit" 2>/dev/null ||
    git -C "$SRC" rev-parse HEAD 2>/dev/null || echo unknown)
HELPER="$PY $SRC/tools/gpu_check.py"
say "source $SRC (commit $COMMIT), wheels $WHEELS, work $WORK"
# Finished stages belong to the code that ran them: another commit starts
# the records afresh (the mmcv build, outside the state, is kept).
if [ "$(cat "$STATE/.commit" 2>/dev/null || echo "$COMMIT")" != "$COMMIT" ]; then
    say "state of commit $(cat "$STATE/.commit") discarded: this is $COMMIT"
    rm -f "$STATE"/*.done "$STATE"/*.json
fi
echo "$COMMIT" >"$STATE/.commit"

# record NAME RC SECONDS COMMAND [record options...]
record() {
    local name=$1 rc=$2 seconds=$3 command=$4
    shift 4
    $HELPER record --state "$STATE" --name "$name" --rc "$rc" \
        --seconds "$seconds" --command "$command" --log "$LOGS/$name.log" "$@"
}

# stage NAME NEED_S MAX_S "RECORD OPTIONS" CMD...: run CMD for at most MAX_S
# seconds, unless an earlier run finished it (ok or failed) or fewer than
# NEED_S seconds are left before the deadline.
stage() {
    local name=$1 need=$2 cap=$3 opts=$4
    shift 4
    if [ -f "$STATE/$name.done" ]; then
        say "$name: finished in an earlier run"
        return 0
    fi
    local left
    left=$(remaining)
    if [ "$left" -lt "$need" ]; then
        say "$name: not started, ${left}s left before the deadline"
        record "$name" 0 0 "$*" --skipped "deadline (${left}s left)" >/dev/null
        return 1
    fi
    local limit=$((cap < left - 5 ? cap : left - 5))
    say "$name: $* (limit ${limit}s)"
    local t0 rc
    t0=$(date +%s)
    (cd "$SRC" && timeout -k 10 "$limit" "$@") >"$LOGS/$name.log" 2>&1
    rc=$?
    # shellcheck disable=SC2086  # opts holds several options
    record "$name" "$rc" $(($(date +%s) - t0)) "$*" $opts
    local ok=$?
    # a failure is final; a time-out is tried again by the next run
    [ "$rc" != 124 ] && [ "$rc" != 137 ] && touch "$STATE/$name.done"
    [ "$ok" = 0 ] && return 0
    tail -n 5 "$LOGS/$name.log" | sed "s/^/    /"
    return 1
}

finish() {
    $HELPER summary --state "$STATE" --out "$OUT/gpu_check.json" \
        --require env,install,mmcv --order env,install,mmcv,configs,data,train_slf_fp32,train_slf_amp,train_fixed_fp32,train_fixed_amp,train_slf_gumbel_fp32,train_slf_gumbel_amp,test_slf_fp32,test_slf_amp,test_fixed_fp32,test_fixed_amp,test_slf_gumbel_fp32,test_slf_gumbel_amp,fps_yolo_fp32,fps_yolo_fp16,fps_fast_yolo_fp32,fps_fast_yolo_fp16,fps_yolo_vgg16_fp32,fps_yolo_vgg16_fp16,step_yolo_fp32,step_retinanet_fp32,step_faster_rcnn_fp32,step_ssd300_fp32,step_retinanet_b8_fp32,step_yolo_amp,host_cost_retinanet,host_cost_yolo \
        || say "summary failed"
    (cd "$WORK" && tar -czf "$OUT/gpu_check_logs.tar.gz" logs state configs \
        runs/*.json runs/*/*.json runs/*/*/*.log \
        runs/*/*/vis_data/scalars.json \
        mmcv/build.log 2>/dev/null)
    say "report: $OUT/gpu_check.json (total $(elapsed)s)"
}
trap finish EXIT

# ------------------------------------------------------------- 1. install
SITE=$WORK/site
stage install 20 120 "" \
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target "$SITE" $(ls "$WHEELS"/*.whl)
MMCV_SRC=$WORK/mmcv/mmcv-2.1.0
export PYTHONPATH="$SRC:$MMCV_SRC:$SITE${PYTHONPATH:+:$PYTHONPATH}"

# mmengine's collect_env imports distutils, gone from Python 3.12's standard
# library; setuptools provides it when its import hook is active.
if ! "$PY" -c "from distutils import errors" >/dev/null 2>&1 &&
    "$PY" -c "import setuptools._distutils" >/dev/null 2>&1; then
    mkdir -p "$SITE/distutils"
    cat >"$SITE/distutils/__init__.py" <<'EOF_SHIM'
# distutils from setuptools (Python 3.12 has none of its own).
import importlib
import sys

sys.modules[__name__] = importlib.import_module('setuptools._distutils')
EOF_SHIM
    say "distutils: shim to setuptools._distutils in $SITE"
fi

CUDA_EXPORTS=$($HELPER cuda-env --json "$WORK/cuda_env.json" \
    --lib-dir "$WORK/cudart" 2>>"$LOGS/env.log")
ENV_RC=$?
eval "$CUDA_EXPORTS"
record env "$ENV_RC" 0 "tools/gpu_check.py cuda-env" --parse json \
    --work-dir "$WORK/cuda_env.json" >/dev/null
if [ "$ENV_RC" != 0 ]; then
    say "cuda-env failed (rc $ENV_RC, $LOGS/env.log): no mmcv build"
    exit 1
fi

# --------------------------------------------------------------- 2. mmcv
MMCV_CHECK='import torch, mmcv
from mmcv.ops import nms
boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30.]],
                     device="cuda")
dets, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7], device="cuda"), 0.5)
assert keep.tolist() == [0, 2] and dets.is_cuda, keep
print("mmcv", mmcv.__version__, "CUDA nms ok")'
BUILD_LOG=$WORK/mmcv/build.log
mmcv_ok() { (cd "$WORK" && "$PY" -c "$MMCV_CHECK") >>"$LOGS/mmcv.log" 2>&1; }

if [ ! -f "$STATE/mmcv.done" ]; then
    if mmcv_ok; then
        record mmcv 0 0 "mmcv importable with CUDA ops" >/dev/null &&
            touch "$STATE/mmcv.done"
    elif [ -f "$WORK/mmcv/build.rc" ]; then
        say "mmcv: build of an earlier run finished"
    elif [ -f "$WORK/mmcv/build.pid" ] &&
        kill -0 "$(cat "$WORK/mmcv/build.pid")" 2>/dev/null; then
        say "mmcv: build of an earlier run still going"
    else
        mkdir -p "$WORK/mmcv"
        [ -d "$MMCV_SRC" ] || tar -xzf "$WHEELS"/mmcv-2.1.0.tar.gz -C "$WORK/mmcv"
        $HELPER patch-mmcv "$MMCV_SRC" >>"$LOGS/mmcv.log" 2>&1
        date +%s >"$WORK/mmcv/build.start"
        say "mmcv: building for compute capability ${TORCH_CUDA_ARCH_LIST:-?}" \
            "with MAX_JOBS=${MAX_JOBS:-?}"
        # own session: goes on if this run ends before the build does
        setsid bash -c "cd '$MMCV_SRC' && '$PY' setup.py build_ext --inplace \
            >'$BUILD_LOG' 2>&1; echo \$? >'$WORK/mmcv/build.rc'" \
            </dev/null >/dev/null 2>&1 &
        echo $! >"$WORK/mmcv/build.pid"
    fi
fi

DATA=$WORK/data/VOCdevkit
# ------------------------------------------- 3. configs (while mmcv builds)
CFGS=$WORK/configs
YOLO=$($HELPER config-path yolo --root "$SRC")
YOLO_SLF=$($HELPER config-path yolo_slf --root "$SRC")
stage configs 10 120 "" bash -c "$HELPER make-config $YOLO_SLF \
    $CFGS/yolo_slf_digits.py --data-root $DATA --iters $ITERS --check && \
    $HELPER make-config $YOLO $CFGS/yolo_digits.py --data-root $DATA \
    --iters $ITERS --check"

if [ ! -f "$STATE/mmcv.done" ]; then
    while [ ! -f "$WORK/mmcv/build.rc" ] && [ "$(remaining)" -gt 10 ]; do
        sleep 5
    done
    T0=$(cat "$WORK/mmcv/build.start" 2>/dev/null || echo "$START")
    if [ ! -f "$WORK/mmcv/build.rc" ]; then
        say "mmcv: still building at the deadline; run again to go on"
        cp "$BUILD_LOG" "$LOGS/mmcv.log" 2>/dev/null
        record mmcv 124 $(($(date +%s) - T0)) "setup.py build_ext --inplace" \
            >/dev/null
        exit 0
    fi
    RC=$(cat "$WORK/mmcv/build.rc")
    cat "$BUILD_LOG" >>"$LOGS/mmcv.log" 2>/dev/null
    if [ "$RC" = 0 ] && mmcv_ok; then
        record mmcv 0 $(($(date +%s) - T0)) "setup.py build_ext --inplace" &&
            touch "$STATE/mmcv.done"
    else
        [ "$RC" = 0 ] && RC=1  # built, but not importable
        record mmcv "$RC" $(($(date +%s) - T0)) "setup.py build_ext --inplace"
        say "mmcv: build failed, see $LOGS/mmcv.log"
        exit 1
    fi
fi
say "$(tail -n 1 "$LOGS/mmcv.log")"

[ "${GPU_CHECK_TRAIN:-1}" = 0 ] && TRAIN_RUNS="" &&
    say "data, training and reload: skipped (GPU_CHECK_TRAIN=0)"
# --------------------------------------------------------------- 4. data
# (tools/make_demo_data.py imports mmdet_slf, hence mmdet and mmcv's ops)
[ -n "$TRAIN_RUNS" ] && stage data 20 120 "" \
    "$PY" tools/make_demo_data.py --root "$DATA" --num-trainval 320 \
    --num-test 96 --quiet

# ----------------------------------------------------------- 5. training
digits_config() {
    case $1 in
    slf_*) echo "$CFGS/yolo_slf_digits.py" ;;
    *) echo "$CFGS/yolo_digits.py" ;;
    esac
}
# The --cfg-options of a run, for training and reload alike.
run_options() {
    case $1 in
    slf_gumbel_*)
        echo "--cfg-options model.bbox_head.weighting.decision_objective=joint" \
            "model.bbox_head.weighting.estimator=gumbel"
        ;;
    esac
}
for run in $TRAIN_RUNS; do
    cfg=$(digits_config "$run")
    amp=()
    [ "${run%_amp}" != "$run" ] && amp=(--amp)
    slf=()
    [ "${run#slf_}" != "$run" ] && slf=(--expect-slf)
    # shellcheck disable=SC2046  # run_options gives several words
    stage "train_$run" 60 240 "--parse train --work-dir $RUNS/train_$run ${slf[*]}" \
        "$PY" tools/train.py "$cfg" --work-dir "$RUNS/train_$run" ${amp[@]+"${amp[@]}"} \
        $(run_options "$run")
done

# ------------------------------------------ 6. reload on CUDA, VOC mAP
test_run() {
    local run=$1 cfg ckpt
    cfg=$(digits_config "$run")
    ckpt=$(ls "$RUNS/train_$run"/iter_*.pth 2>/dev/null | tail -n 1)
    if [ -z "$ckpt" ]; then
        record "test_$run" 0 0 "tools/test.py" \
            --skipped "no checkpoint of train_$run" >/dev/null
        return 1
    fi
    # shellcheck disable=SC2046  # run_options gives several words
    stage "test_$run" 30 150 "--parse test" \
        "$PY" tools/test.py "$cfg" "$ckpt" --work-dir "$RUNS/test_$run" \
        $(run_options "$run")
}
# The first run's checkpoint now, the others after the timings.
FIRST_RUN=${TRAIN_RUNS%% *}
[ -n "$TRAIN_RUNS" ] && test_run "$FIRST_RUN"

# ------------------------------------------------------ 7. batch-1 FPS
FPS_ARCHS="yolo fast_yolo yolo_vgg16"
[ "${GPU_CHECK_FPS:-1}" = 0 ] && FPS_ARCHS="" && say "fps: skipped (GPU_CHECK_FPS=0)"
for arch in $FPS_ARCHS; do
    fixed=$($HELPER config-path "$arch" --root "$SRC")
    slf=$($HELPER config-path "${arch}_slf" --root "$SRC")
    for dtype in fp32 fp16; do
        half=()
        [ "$dtype" = fp16 ] && half=(--fp16)
        stage "fps_${arch}_$dtype" 30 150 \
            "--parse fps --work-dir $RUNS/fps_${arch}_$dtype.json" \
            "$PY" tools/benchmark_fps.py "$fixed" --compare "$slf" \
            --same-weights --device cuda --num-iters 300 --warmup 50 \
            --fuse-conv-bn ${half[@]+"${half[@]}"} --out "$RUNS/fps_${arch}_$dtype.json"
    done
done

# ------------------------------------------------ 8. training-step time
# NAME FIXED_CONFIG SLF_CONFIG DTYPES [CFG_OPTIONS]: the mmdet detectors
# against the SLF configs that inherit from them. mmdet's SSD300 reaches its
# learning rate only after a 500-iteration warm-up, which a timed step does
# not run; from random VGG weights (nothing pretrained here) the full rate
# gives non-finite losses within the timed steps, which the SLF model
# refuses. The rate does not change the work of a step. RetinaNet runs a
# second time at batch 8: if SLF's cost is a fixed host time per step, its
# milliseconds stay and its share of the step falls.
STEP_PAIRS="yolo $YOLO $YOLO_SLF fp32
retinanet mmdet::pascal_voc/retinanet_r50_fpn_1x_voc0712.py \
configs/slf_detectors/retinanet-slf_r50_fpn_1x_voc0712.py fp32
faster_rcnn mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py \
configs/slf_detectors/faster-rcnn-slf_r50_fpn_1x_voc0712.py fp32
ssd300 mmdet::pascal_voc/ssd300_voc0712.py \
configs/slf_detectors/ssd300-slf_voc0712.py fp32 optim_wrapper.optimizer.lr=2e-4
retinanet_b8 mmdet::pascal_voc/retinanet_r50_fpn_1x_voc0712.py \
configs/slf_detectors/retinanet-slf_r50_fpn_1x_voc0712.py fp32 train_dataloader.batch_size=8
yolo $YOLO $YOLO_SLF amp"
# After the timing, GPU_CHECK_PROFILE steps of each model run under
# torch.profiler: which operators and kernels SLF adds to the step.
PROFILE=${GPU_CHECK_PROFILE:-5}
STEP_ITERS=${GPU_CHECK_STEP_ITERS:-50}
# Each step is followed by the runner's .item() reads of what it returns,
# as in a training run (GPU_CHECK_LOG_READS=0: model.train_step alone).
LOG_READS=()
[ "${GPU_CHECK_LOG_READS:-1}" = 1 ] && LOG_READS=(--log-reads)
[ "${GPU_CHECK_STEP:-1}" = 0 ] && STEP_PAIRS="" &&
    say "training-step time: skipped (GPU_CHECK_STEP=0)"
while read -r name fixed slf dtypes options; do
    [ -z "$name" ] && continue
    case " $STEP_MODELS " in
    *" $name "*) ;;
    *) continue ;;
    esac
    for dtype in ${dtypes//,/ }; do
        extra=()
        [ "$dtype" = amp ] && extra=(--fp16)
        [ -n "$options" ] && extra+=(--cfg-options $options)
        stage "step_${name}_$dtype" 40 150 \
            "--parse fps --work-dir $RUNS/step_${name}_$dtype.json" \
            "$PY" tools/benchmark_fps.py "$fixed" --compare "$slf" \
            --same-weights --train --device cuda --num-iters "$STEP_ITERS" --warmup 10 \
            --profile "$PROFILE" --count-ops ${LOG_READS[@]+"${LOG_READS[@]}"} \
            ${extra[@]+"${extra[@]}"} \
            --out "$RUNS/step_${name}_$dtype.json"
    done
done <<<"$STEP_PAIRS"

# ------------------------------- 8b. the weightings' host time on their own
# NAME OPTIONS: tools/weighting_host_cost.py with RetinaNet's two batch-level
# terms and with YOLO's four per-image terms at batch 64.
HOST_COST_RUNS="retinanet --terms cls box
yolo --terms coord pred obj noobj --images 64"
[ "${GPU_CHECK_HOST_COST:-1}" = 0 ] && HOST_COST_RUNS="" &&
    say "weightings' host time: skipped (GPU_CHECK_HOST_COST=0)"
while read -r name options; do
    [ -z "$name" ] && continue
    # shellcheck disable=SC2086  # options holds several words
    stage "host_cost_$name" 30 90 \
        "--parse json --work-dir $RUNS/host_cost_$name.json" \
        "$PY" tools/weighting_host_cost.py --device cuda --rounds 200 \
        --steps 20 --warmup 100 $options --out "$RUNS/host_cost_$name.json"
done <<<"$HOST_COST_RUNS"

# ------------------------------------- 9. the other checkpoints, if time
for run in $TRAIN_RUNS; do
    [ "$run" = "$FIRST_RUN" ] || test_run "$run"
done
