#!/usr/bin/env bash
# The GPU check, in one command, with no Node: builds gpu_check and the host emulation test with
# CMake (and ninja when present), runs the host emulation of the CUDA blocks, gpu_check (every
# device-arena operation against the CPU kernels, bad device indices, the two bandwidth ratios)
# and the Python checkpoint check, then prints one summary.
#
#   bash scripts/gpu-check.sh [gpu_check options, e.g. --quick, --reps 10]
#
# Without a usable GPU (here, CI) the same command runs everything that needs none and says so;
# exit 0 unless something failed. Exit 1: a check failed or the build failed, or nvidia-smi lists a
# GPU that gpu_check cannot use (a CUDA-less build, a driver too old for CUDA 13).
# Build directory: build/ when it is a CMake tree of this checkout (what `npm ci` made, so CI
# compiles nothing new), else build/gpu-check, configured here with -DMODEL_EMA_BUILD_ADDON=OFF
# and, where nvidia-smi names the GPU's compute capability, for that architecture only (one nvcc
# pass instead of six). A build/gpu-check carried from another checkout is used as it is (its
# binaries are self-contained: static CUDA runtime); its CMakeCache.txt, gpu_check and
# multi_tensor_emulation_test (a few MiB) are all it needs, which saves the GPU machine the nvcc
# build (a minute or two of a short lease). GPU_CHECK_LOG_DIR=<dir>: full logs there too.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
logs=${GPU_CHECK_LOG_DIR:-$(mktemp -d)}
mkdir -p "$logs"
say() { printf 'gpu-check: %s\n' "$*"; }

# The source folder a CMake tree was configured for (empty when there is none).
tree_home() { sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$1/CMakeCache.txt" 2>/dev/null; }

# nvcc is often installed off PATH (/usr/local/cuda/bin); CMake would then build without CUDA and
# the check would find "no CUDA kernels" on a GPU machine.
if ! command -v nvcc >/dev/null && [ -z "${CUDACXX:-}" ] && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi
# Where the driver lists a GPU, one that gpu_check cannot use is a failure, not "no GPU".
gpu_listed=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
check_args=("$@")
if [ "${gpu_listed:-0}" -gt 0 ]; then check_args+=(--require-gpu); fi

build_dir=build/gpu-check
build_note=""
if [ "$(tree_home build)" = "$root" ]; then
  build_dir=build
  build_note="reused build/ (the addon's CMake tree)"
elif [ -f "$build_dir/CMakeCache.txt" ] && [ "$(tree_home "$build_dir")" != "$root" ]; then
  # Carried from another checkout: use its binaries if they run here (a build made on another
  # system may need a newer C library); a bad argument must get gpu_check's usage error, exit 2.
  "$build_dir/gpu_check" --probe-usage >/dev/null 2>&1
  if [ $? = 2 ] && [ -x "$build_dir/multi_tensor_emulation_test" ]; then
    build_note="carried binaries in $build_dir (configured in $(tree_home "$build_dir"))"
  else
    say "the carried $build_dir does not run here: building afresh in build/gpu-check-here"
    build_dir=build/gpu-check-here
  fi
fi

build_ok=1
if [ -z "$build_note" ] || [ "$build_dir" = build ]; then
  if [ "$build_dir" != build ] && [ ! -f "$build_dir/CMakeCache.txt" ]; then
    args=(-S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DMODEL_EMA_BUILD_ADDON=OFF)
    command -v ninja >/dev/null && args+=(-G Ninja)
    # The GPU's own architecture only, e.g. "9.0" -> 90-real (a build here keeps all of them).
    cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' .')
    if [[ "$cc" =~ ^[0-9]+$ ]]; then args+=("-DCMAKE_CUDA_ARCHITECTURES=${cc}-real"); fi
    say "configuring $build_dir: cmake ${args[*]}"
    cmake "${args[@]}" >"$logs/configure.log" 2>&1 || { tail -n 30 "$logs/configure.log"; build_ok=0; }
    build_note="configured $build_dir${cc:+ for sm_$cc}"
  fi
  if [ "$build_ok" = 1 ]; then
    say "building gpu_check and multi_tensor_emulation_test in $build_dir"
    start=$SECONDS
    cmake --build "$build_dir" --target gpu_check multi_tensor_emulation_test -j "$(nproc 2>/dev/null || echo 2)" \
      >"$logs/build.log" 2>&1 || { tail -n 40 "$logs/build.log"; build_ok=0; }
    build_note="$build_note, built in $((SECONDS - start)) s"
  fi
fi
[ "$build_ok" = 1 ] || build_note="BUILD FAILED (log: $logs)"

failed=0
emulation="not run (no binary)"
native="not run (no binary)"
if [ -x "$build_dir/multi_tensor_emulation_test" ]; then
  say "host emulation of the CUDA blocks (quick)"
  "$build_dir/multi_tensor_emulation_test" quick 2>&1 | tee "$logs/emulation.log"
  [ "${PIPESTATUS[0]}" = 0 ] || failed=1
  emulation=$(tail -n 1 "$logs/emulation.log")
else
  failed=1
fi
if [ -x "$build_dir/gpu_check" ]; then
  say "gpu_check ${check_args[*]}"
  "$build_dir/gpu_check" "${check_args[@]}" 2>&1 | tee "$logs/gpu_check.log"
  [ "${PIPESTATUS[0]}" = 0 ] || failed=1
  native=$(grep '^gpu_check: \(PASS\|FAIL\|NO GPU\)' "$logs/gpu_check.log" | tail -n 1)
  native=${native:-"gpu_check ended without a summary (crashed?)"}
else
  failed=1
fi

python=${PYTHON:-python3}
if command -v "$python" >/dev/null; then
  say "checkpoint check: $python scripts/gpu_check/check_checkpoint.py"
  "$python" scripts/gpu_check/check_checkpoint.py 2>&1 | tee "$logs/checkpoint.log"
  [ "${PIPESTATUS[0]}" = 0 ] || failed=1
  checkpoint=$(tail -n 1 "$logs/checkpoint.log")
else
  checkpoint="SKIPPED: no $python on PATH"
fi

bandwidth=$(grep -A6 '^bandwidth on ' "$logs/gpu_check.log" 2>/dev/null)
echo
echo "==== gpu-check summary ===="
echo "build:           $build_note"
echo "host emulation:  $emulation"
echo "native:          $native"
echo "checkpoint:      $checkpoint"
[ -n "$bandwidth" ] && echo "$bandwidth"
case "$native" in
  "gpu_check: NO GPU"*)
    if [ "${gpu_listed:-0}" -gt 0 ]; then
      echo "GPU:             nvidia-smi lists $gpu_listed, but gpu_check cannot use it (reason above): the device checks did not run"
    else
      echo "GPU:             none usable on this machine: the device checks did not run (what needs no GPU did)"
    fi ;;
  "gpu_check: PASS"* | "gpu_check: FAIL"*) echo "GPU:             $(head -n 1 "$logs/gpu_check.log" | sed 's/^gpu_check: //')" ;;
esac
if [ "$failed" = 0 ] && [ "$build_ok" = 1 ]; then
  echo "gpu-check: PASS"
  exit 0
fi
echo "gpu-check: FAIL (logs in $logs)"
exit 1
