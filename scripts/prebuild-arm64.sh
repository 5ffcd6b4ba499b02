#!/usr/bin/env bash
# The linux-arm64 (glibc) prebuild, cross-compiled on x86-64 Debian with g++-aarch64-linux-gnu
# (cmake/aarch64-linux-gnu.cmake): CPU only (no CUDA for arm64), Node-API headers from
# node-api-headers (no download). Builds in build-arm64/, never build/ (node-gyp-build would load
# an arm64 build/Release/*.node first and fail on this machine), and writes the file prebuildify
# would: prebuilds/linux-arm64/<package name>.glibc.node, stripped (prebuildify 6 with --napi and
# --tag-libc names linux-x64's so: the package name takes the place of the runtime tag, and no abi
# tag means any Node-API Node to node-gyp-build).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

for tool in aarch64-linux-gnu-g++ aarch64-linux-gnu-strip aarch64-linux-gnu-readelf aarch64-linux-gnu-objdump cmake; do
  command -v "$tool" >/dev/null || { echo "prebuild-arm64: $tool not found (apt-get install g++-aarch64-linux-gnu cmake)" >&2; exit 1; }
done

# Only the addon target: the bench and test helpers are host tools.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
node node_modules/cmake-js/bin/cmake-js rebuild --out build-arm64 --target model_ema \
  --CDCMAKE_TOOLCHAIN_FILE="$root/cmake/aarch64-linux-gnu.cmake" --CDMODEL_EMA_DISABLE_CUDA=ON \
  >"$log" 2>&1 || { tail -n 40 "$log" >&2; echo "prebuild-arm64: the cross build failed (above)" >&2; exit 1; }

built=build-arm64/Release/model_ema.node
header="$(aarch64-linux-gnu-readelf -h "$built")"
grep -q 'Machine: *AArch64' <<<"$header" || { echo "prebuild-arm64: $built is not an arm64 binary" >&2; exit 1; }
# The 'baseline' loops are NEON on arm64 (Advanced SIMD is part of armv8-a, so -O3 vectorises them
# with no target flags; -fopt-info-vec lists every loop of cpu_loops.inl as vectorised). Guard it:
# the update's float32 multiply and subtract must appear as 4-lane vector instructions.
kernels=build-arm64/CMakeFiles/model_ema_kernels.dir/native/kernels/cpu_kernels_baseline.cc.o
neon="$(aarch64-linux-gnu-objdump -d "$kernels" | grep -cE '\s(fmul|fsub)\s+v[0-9]+\.4s' || true)"
[ "$neon" -gt 0 ] || { echo "prebuild-arm64: the baseline kernels did not vectorise with NEON" >&2; exit 1; }

name="$(node -p 'require("./package.json").name')"
rm -rf prebuilds/linux-arm64 && mkdir -p prebuilds/linux-arm64
# --strip-all, as prebuildify --strip does.
aarch64-linux-gnu-strip --strip-all -o "prebuilds/linux-arm64/$name.glibc.node" "$built"
echo "prebuilds/linux-arm64/$name.glibc.node: $(du -k "prebuilds/linux-arm64/$name.glibc.node" | cut -f1) KiB, $neon NEON fmul/fsub.4s in the baseline loops"
