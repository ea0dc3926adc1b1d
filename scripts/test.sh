#!/usr/bin/env bash
# The whole test suite: install what is missing, build the tests optimised (release, with Swift's checks kept and
# @testable imports enabled) in .build-test, and run every Swift Testing test through scripts/run-tests.py, which
# prints one line per finished test with its time, every issue, the ten slowest test cases and a closing count,
# and stops the run (naming the tests still running) if it passes FOVEA_TEST_TIMEOUT seconds.
# Extra arguments go to `swift test` (e.g. --filter FoveaDataTests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-dependencies.sh
build=(-c release --scratch-path .build-test -Xswiftc -enable-testing)
start=$(date +%s)
mkdir -p .build-test
if ! swift build "${build[@]}" --build-tests > .build-test/build.log 2>&1; then
    cat .build-test/build.log
    echo "the test build failed (log: .build-test/build.log)" >&2
    exit 1
fi
grep -E 'warning:|error:' .build-test/build.log || true
echo "build: $(( $(date +%s) - start )) s"
# The browser test of fovea serve's page drives Debian's Chromium through Selenium, from PyPI, in a venv of its own.
venv=.build-test/browser-venv
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "import selenium" 2> /dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv" && "$venv/bin/pip" install -q "selenium>=4.20,<5" \
        || { echo "could not install Selenium from PyPI into $venv (the browser test needs it)" >&2; exit 1; }
fi
export FOVEA_BROWSER_PYTHON="$PWD/$venv/bin/python"
# Tests run one at a time (--no-parallel), so that each one's time is its own; oneDNN spreads each kernel over both
# cores. Idle OpenMP threads sleep instead of spinning while Swift code runs.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
# The run takes about 3 minutes on a 2-core AMD EPYC (Zen 3); the timeout leaves room for a machine 5× slower.
exec python3 scripts/run-tests.py --timeout "${FOVEA_TEST_TIMEOUT:-900}" --console .build-test/test-console.log \
    --events .build-test/test-events.jsonl -- \
    swift test "${build[@]}" --skip-build --no-parallel "$@"
