#!/usr/bin/env bash
# Before publishing: every expected prebuild is present, the tarball installs without a compiler,
# and the whole test suite passes against the prebuilt binary alone (build/ moved aside, so
# node-gyp-build can only find prebuilds/).
# MODEL_EMA_EXPECTED_PREBUILDS lists the platform-arch folders to require (default: this machine's;
# a release has linux-x64 and linux-arm64 from this machine (npm run prebuildify, scripts/check-arm64.sh)
# and darwin-x64, darwin-arm64 and win32-x64 from .github/workflows/prebuild.yml).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
expected="${MODEL_EMA_EXPECTED_PREBUILDS:-$(node -p 'process.platform + "-" + process.arch')}"
for target in $expected; do
  ls "prebuilds/$target"/*.node >/dev/null 2>&1 || { echo "missing prebuild: prebuilds/$target" >&2; exit 1; }
  echo "prebuild present: $(ls prebuilds/"$target"/*.node)"
done

bash scripts/check-package.sh

aside="$(mktemp -d)"
restore() { if [ -d "$aside/build" ]; then rm -rf build && mv "$aside/build" build; fi; rm -rf "$aside"; }
trap restore EXIT
[ -d build ] && mv build "$aside/build"
npx jest
