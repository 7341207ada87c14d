#!/bin/bash
# Installs what is missing, builds and installs qtopo, and runs every test that fits a
# CI run: unit tests, MPI tests at several rank counts, and (as root) the tests on the
# emulated cluster. Prints the automake test summary; exit status 0 only if all pass.
set -euo pipefail

cd "$(dirname "$0")"
scripts/setup.sh
status=0
make check || status=$?
# one closing line over the test programs, from automake's summary
awk '/^# PASS:/ { p = $3 } /^# (FAIL|ERROR|XPASS):/ { f += $3 } /^# SKIP:/ { s = $3 }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' test-suite.log
if [ "$status" -ne 0 ]; then
    for log in test/*.log test/*/*.log; do
        [ -f "$log" ] && { echo "==== $log"; tail -n 40 "$log"; }
    done
    exit 1
fi
