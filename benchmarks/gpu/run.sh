#!/usr/bin/env bash
# The GPU check of lightning-topo: CUDA equality tests + GPU benchmarks -> OUTDIR/results.json and OUTDIR/log.txt.
#
#   bash benchmarks/gpu/run.sh OUTDIR          # on the GPU machine, from the repo root (< 8 minutes on an H100/H200)
#   bash benchmarks/gpu/run.sh --dry OUTDIR    # the same steps at tiny sizes on a CPU-only machine (< 2 minutes)
#
# Nothing is fetched: the wheels the GPU machine lacks come from the repo folder .whl/ (git-ignored; see
# README.md) and are installed into /tmp/site; the package itself runs from the repo via PYTHONPATH.
# In --dry mode the current Python environment is used as is (set $PYTHON to choose the interpreter).
# Every stage runs under a time cap; a failing or timed-out stage is recorded in results.json ("stages")
# and the next stage runs anyway. Files written to OUTDIR: results.json, log.txt, junit_cuda.xml.
set -uo pipefail

DRY=0
if [[ "${1:-}" == "--dry" ]]; then
    DRY=1
    shift
fi
if [[ $# -ne 1 ]]; then
    echo "usage: bash benchmarks/gpu/run.sh [--dry] OUTDIR" >&2
    exit 2
fi
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
mkdir -p "$1"
OUT="$(cd "$1" && pwd)"
PY="${PYTHON:-python3}"
BENCH="$REPO/benchmarks/gpu/bench_gpu.py"
STAGES_FILE="$(mktemp "${TMPDIR:-/tmp}/lt_gpu_stages.XXXXXX")"
SITE="${LT_SITE:-/tmp/site}"
export PYTHONUNBUFFERED=1
export MPLBACKEND=Agg
export CUPY_CACHE_DIR="${CUPY_CACHE_DIR:-/tmp/cupy_kernel_cache}"  # CuPy compiles its kernels once, shared by stages
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-/tmp/numba_cache}"  # so do numba's (the CPU kernels), wherever the repo is

if [[ $DRY -eq 1 ]]; then
    # Seconds from the start by which every stage but the summary must end. A rehearsal checks the steps, not the
    # speed: the caps leave room for a loaded CI machine (seen: 142 s spent before the last stage, which the
    # earlier deadline of 150 s then cut to 8 s), though an idle one needs about 1-2 minutes in all.
    DEADLINE=330
    CAP_ENV=60 CAP_TESTS=60 CAP_CCL=60 CAP_SIZES=40 CAP_EVAL=60 CAP_FIT=60 CAP_PERS=120 CAP_CPU=60
    # (persistence: its first call compiles the kernels of every dimension, about 30 s with a cold numba cache)
    DRY_FLAG=(--dry)
    # One thread: on a small, shared CPU, multi-threaded torch ops can stall for seconds in their barriers.
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
else
    DEADLINE=450       # 7.5 minutes; the summary (a few seconds, capped at 30) follows
    CAP_ENV=60 CAP_TESTS=150 CAP_CCL=120 CAP_SIZES=90 CAP_EVAL=120 CAP_FIT=120 CAP_PERS=120 CAP_CPU=120
    DRY_FLAG=()
fi

HAVE_TIMEOUT=$(command -v timeout || true)
# capped CAP_SECONDS COMMAND...: run COMMAND, killed after CAP seconds (uncapped where `timeout` is missing).
capped() {
    local cap="$1"
    shift
    if [[ -n "$HAVE_TIMEOUT" ]]; then
        timeout --signal=TERM --kill-after=10 "$cap" "$@"
    else
        "$@"
    fi
}

# run_stage NAME CAP_SECONDS COMMAND...: run under min(cap, time left), record "name rc seconds cap".
run_stage() {
    local name="$1" cap="$2"
    shift 2
    local left=$((DEADLINE - SECONDS))
    if ((left < 5)); then
        echo "=== [$name] skipped: out of time"
        printf '%s\tskipped\t0\t0\n' "$name" >>"$STAGES_FILE"
        return 0
    fi
    ((cap > left)) && cap=$left
    echo "=== [$name] start $(date -u +%H:%M:%S), cap ${cap}s"
    local start=$SECONDS rc=0
    STAGE_BUDGET=$((cap - 5)) capped "$cap" "$@" || rc=$?
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - start))" "$cap" >>"$STAGES_FILE"
    echo "=== [$name] rc=$rc after $((SECONDS - start))s"
    return 0
}

# install_wheels: the wheels of .whl/ into $SITE with pip (no index, no deps); unzip them if pip fails.
install_wheels() {
    local wheels=("$REPO"/.whl/*.whl) start=$SECONDS rc=0
    if [[ ! -e "${wheels[0]}" ]]; then
        echo "no wheels in $REPO/.whl (carry the folder along); going on without them"
        printf 'install\t1\t0\t0\n' >>"$STAGES_FILE"
        return 0
    fi
    echo "=== [install] ${#wheels[@]} wheels into $SITE"
    capped 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" "${wheels[@]}" || rc=$?
    if [[ $rc -ne 0 ]]; then
        echo "pip failed (rc=$rc): unzipping the wheels into $SITE instead"
        rc=0
        "$PY" -c 'import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]' \
            "$SITE" "${wheels[@]}" || rc=$?
    fi
    printf 'install\t%s\t%s\t120\n' "$rc" "$((SECONDS - start))" >>"$STAGES_FILE"
    echo "=== [install] rc=$rc after $((SECONDS - start))s"
}

main() {
    cd "$REPO" || exit 1
    echo "lightning-topo GPU check: repo $REPO, out $OUT, dry=$DRY, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    if [[ $DRY -eq 0 ]]; then
        install_wheels
        export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
        command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    else
        export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
    fi
    # results.json with every fixed field (null) first, so it exists whatever fails later.
    "$PY" "$BENCH" init --out "$OUT" ${DRY_FLAG[@]+"${DRY_FLAG[@]}"} || printf '{"stages": {}, "error": "init failed"}\n' >"$OUT/results.json"
    run_stage env "$CAP_ENV" "$PY" "$BENCH" env --out "$OUT" ${DRY_FLAG[@]+"${DRY_FLAG[@]}"}
    run_stage cuda_tests "$CAP_TESTS" "$PY" -m pytest -m cuda tests/test_cuda.py -q -p no:cacheprovider \
        -o junit_family=xunit2 --junitxml="$OUT/junit_cuda.xml" -rfEsxX
    run_stage ccl "$CAP_CCL" "$PY" "$BENCH" ccl --out "$OUT" ${DRY_FLAG[@]+"${DRY_FLAG[@]}"}
    run_stage sizes "$CAP_SIZES" "$PY" "$BENCH" sizes --out "$OUT" ${DRY_FLAG[@]+"${DRY_FLAG[@]}"}
    run_stage eval "$CAP_EVAL" "$PY" "$BENCH" eval --out "$OUT" ${DRY_FLAG[@]+"${DRY_FLAG[@]}"}
    run_stage fit "$CAP_FIT" "$PY" "$BENCH" fit --out "$OUT" ${DRY_FLAG[@]+"${DRY_FLAG[@]}"}
    run_stage persistence "$CAP_PERS" "$PY" "$BENCH" persistence --out "$OUT" ${DRY_FLAG[@]+"${DRY_FLAG[@]}"}
    run_stage cpu_threads "$CAP_CPU" "$PY" "$BENCH" cpu_threads --out "$OUT" ${DRY_FLAG[@]+"${DRY_FLAG[@]}"}
    capped 30 "$PY" "$BENCH" summary --out "$OUT" --stages-file "$STAGES_FILE" ${DRY_FLAG[@]+"${DRY_FLAG[@]}"} ||
        echo "summary failed: results.json holds the stages' fields without goals"
    echo "total ${SECONDS}s; results in $OUT/results.json"
}

main 2>&1 | tee "$OUT/log.txt"
status=${PIPESTATUS[0]}
rm -f "$STAGES_FILE"
exit "$status"
