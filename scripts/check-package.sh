#!/usr/bin/env bash
# Packs the package and installs the tarball into an empty project with PATH reduced to node, npm
# and sh (no compiler, no cmake), then runs a real update through it: the prebuilt binary must be
# enough. Run after `npm run prebuildify` (CI does both). Prints the tarball size and install time.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

expected="prebuilds/$(node -p 'process.platform + "-" + process.arch')"
ls "$root/$expected"/*.node >/dev/null 2>&1 || { echo "no prebuild in $expected: run npm run prebuildify" >&2; exit 1; }

tarball="$(cd "$root" && npm pack --silent --pack-destination "$work" | tail -n 1)"
echo "tarball: $tarball, $(du -k "$work/$tarball" | cut -f1) KiB"
tar -tzf "$work/$tarball" | grep "package/$expected/" >/dev/null || { echo "tarball lacks $expected" >&2; exit 1; }
if tar -tzf "$work/$tarball" | grep -E '^package/(src|test|bench|build)/'; then
  echo "tarball carries files it should not (above)" >&2; exit 1
fi

# A bin folder with node, npm and the shell npm runs scripts with: no compiler, no cmake.
mkdir -p "$work/bin" "$work/app"
ln -s "$(command -v node)" "$work/bin/node"
ln -s "$(command -v sh)" "$work/bin/sh"
ln -s "$(readlink -f "$(command -v npm)")" "$work/bin/npm"
cd "$work/app"
for tool in cc gcc g++ c++ cmake make; do
  if PATH="$work/bin" command -v "$tool" >/dev/null; then echo "$tool is still on the reduced PATH" >&2; exit 1; fi
done
PATH="$work/bin" npm init -y >/dev/null
start=$(date +%s.%N)
PATH="$work/bin" npm install --no-audit --no-fund "$work/$tarball" >/dev/null
end=$(date +%s.%N)
echo "install without a compiler: $(node -p "($end - $start).toFixed(1)") s"

PATH="$work/bin" node -e '
  const { ExponentialMovingAverage, cpuInfo } = require("model-ema");
  const p = [new Float32Array([1, 2, 3]), new Float64Array([4])];
  const ema = new ExponentialMovingAverage(p, { decay: 0.5, useNumUpdates: false });
  ema.update([new Float32Array([3, 2, 1]), new Float64Array([0])]);
  const got = ema.stateDict().shadowParams.map((a) => Array.from(a));
  const want = [[2, 2, 2], [2]];
  if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error("wrong update: " + JSON.stringify(got));
  console.log("update through the installed tarball: ok (" + JSON.stringify(cpuInfo()) + ")");
'
