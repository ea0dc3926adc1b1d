#!/usr/bin/env bash
# The whole test suite: install what is missing, build, run every Swift Testing test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-dependencies.sh
swift build --build-tests
swift test --skip-build "$@"
