#!/usr/bin/env bash
# The whole test suite: install what is missing, build, run every Swift Testing test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-dependencies.sh
swift build --build-tests
# Tests run concurrently, each test thread with its own OpenMP team: let idle OpenMP threads sleep
# instead of spinning, so they do not starve each other on a small machine.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
# A hang must fail CI rather than eat its whole budget.
timeout 1500 swift test --skip-build "$@"
