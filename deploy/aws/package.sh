#!/usr/bin/env bash
# Build the Lambda package that template.yaml deploys: sirsync and its dependencies, for the functions'
# architecture and Python version, in deploy/aws/.build/package (template.yaml's CodeUri).
#
#   deploy/aws/package.sh [arm64|x86_64]        # default arm64, the template's default Architecture
#
# Works on any machine with Python 3.11+ and pip: dependencies with compiled parts come as wheels built
# for the Lambda platform; the few published only as source (pure Python) are built here first.
set -euo pipefail

arch="${1:-arm64}"
python_version="${PYTHON_VERSION:-3.12}"  # the template's Runtime
case "$arch" in
  arm64) platform=manylinux2014_aarch64 ;;
  x86_64) platform=manylinux2014_x86_64 ;;
  *) echo "package.sh: architecture is arm64 or x86_64, not $arch" >&2; exit 2 ;;
esac

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"
build="$here/.build"
rm -rf "$build"
mkdir -p "$build/wheels" "$build/package"

# sirsync's own wheel, and pure-Python wheels of what is published only as source (ijson 2.x, which
# pysnow pins): pip cannot build those for another platform, and they need no building for one.
"$python" -m pip wheel --quiet --no-deps -w "$build/wheels" "$repo" "ijson>=2.5.1,<3"

"$python" -m pip install --quiet --no-compile --target "$build/package" \
  --platform "$platform" --implementation cp --python-version "$python_version" --only-binary=:all: \
  --find-links "$build/wheels" "$build"/wheels/sirsync-*.whl

echo "package.sh: $(du -sh "$build/package" | cut -f1) in $build/package for $arch, Python $python_version"
