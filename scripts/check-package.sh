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
# (bench/results/*.svg: the chart the README shows; npm adds the README.md of every folder it
# ships, so bench/README.md comes with it)
if tar -tzf "$work/$tarball" | grep -E '^package/(src|test|bench|build)/' | grep -v -E '^package/bench/(results/[^/]+\.svg|README\.md)$'; then
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
PATH="$work/bin" npm install --no-audit --no-fund --foreground-scripts "$work/$tarball" >"$work/install.log" 2>&1 || { cat "$work/install.log" >&2; exit 1; }
end=$(date +%s.%N)
echo "install without a compiler: $(node -p "($end - $start).toFixed(1)") s"
# A prebuilt binary that loads: the install script prints nothing (no node-gyp-build stack traces).
if grep -E 'No native build|node-gyp|model-ema:' "$work/install.log"; then
  echo "the install printed the lines above" >&2; exit 1
fi
# tfjs-node is an optional peer named only in peerDependenciesMeta: npm ls does not list it as unmet.
if PATH="$work/bin" npm ls --all 2>&1 | grep 'tfjs-node'; then echo "npm ls shows tfjs-node (above)" >&2; exit 1; fi

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

# The bin: inspect a checkpoint written through the installed package, and refuse a corrupted one.
PATH="$work/bin" node -e '
  const { ExponentialMovingAverage } = require("model-ema");
  const ema = new ExponentialMovingAverage([{ name: "w", value: new Float32Array([1, 2]) }], { decay: 0.9 });
  ema.save("ema.safetensors").then(() => ema.dispose());
'
PATH="$work/bin" ./node_modules/.bin/model-ema inspect ema.safetensors | grep -q '^checksums: verified (1 tensors' \
  || { echo "model-ema inspect did not verify the checkpoint" >&2; exit 1; }
node -e 'const fs = require("fs"); const b = fs.readFileSync("ema.safetensors"); b[b.length - 1] ^= 1; fs.writeFileSync("bad.safetensors", b);'
if PATH="$work/bin" ./node_modules/.bin/model-ema inspect bad.safetensors 2>"$work/inspect.err"; then
  echo "model-ema inspect accepted a corrupted checkpoint" >&2; exit 1
fi
grep -q 'checksum of tensor "shadow.w" does not match' "$work/inspect.err" || { cat "$work/inspect.err" >&2; exit 1; }
echo "npx model-ema inspect through the installed tarball: ok"

# The same tarball without prebuilds, as on a platform that has none.
mkdir -p "$work/repack"
tar -xzf "$work/$tarball" -C "$work/repack"
rm -rf "$work/repack/package/prebuilds"
tar -czf "$work/no-prebuilds.tgz" -C "$work/repack" package

# ... where no compiler or CMake is on PATH: one short message, no stack traces.
mkdir -p "$work/app-nobuild" && cd "$work/app-nobuild"
PATH="$work/bin" npm init -y >/dev/null
if PATH="$work/bin" npm install --no-audit --no-fund --foreground-scripts "$work/no-prebuilds.tgz" >"$work/nobuild.log" 2>&1; then
  echo "installing without prebuilds or a compiler succeeded?" >&2; exit 1
fi
grep -q "model-ema: no prebuilt binary for $(node -p 'process.platform + "-" + process.arch')" "$work/nobuild.log" \
  || { cat "$work/nobuild.log" >&2; echo "the short message is missing (above)" >&2; exit 1; }
if grep -E 'No native build was found|at load\.' "$work/nobuild.log"; then echo "stack traces in the install output" >&2; exit 1; fi
echo "install without prebuilds or compiler: $(grep -c '' "$work/nobuild.log") lines of output, the short message:"
grep -A2 '^model-ema: no prebuilt' "$work/nobuild.log" | sed 's/^/  /'

# ... and where they are: a quiet source build (CPU only, to keep CI short) that leaves only the .node file.
mkdir -p "$work/app-source" && cd "$work/app-source"
npm init -y >/dev/null
start=$(date +%s)
npm_config_cmake_MODEL_EMA_DISABLE_CUDA=ON npm install --no-audit --no-fund --foreground-scripts "$work/no-prebuilds.tgz" >"$work/source.log" 2>&1 \
  || { cat "$work/source.log" >&2; exit 1; }
if grep -E 'No native build|cublas|CMake|-- ' "$work/source.log"; then echo "the source build was not quiet (above)" >&2; exit 1; fi
left="$(cd node_modules/model-ema/build && find . -type f | sort | tr '\n' ' ')"
[ "$left" = "./Release/model_ema.node " ] || { echo "build leftovers after a source install: $left" >&2; exit 1; }
node -e '
  const { ExponentialMovingAverage } = require("model-ema");
  const ema = new ExponentialMovingAverage([new Float32Array([1])], { decay: 0.5, useNumUpdates: false });
  ema.update([new Float32Array([3])]);
  if (ema.stateDict().shadowParams[0][0] !== 2) throw new Error("wrong update after a source install");
'
echo "source install without prebuilds: $(( $(date +%s) - start )) s, quiet, build/ holds only Release/model_ema.node"
