#!/usr/bin/env bash
# Every test against one build directory: unit suites, black-box broker
# tests over real sockets, interop with real clients, liveness tests.
# Usage: tests/run-all.sh BUILD_DIR   (VIGIL_SAN=1 for a sanitizer build)
set -u
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export VIGIL_BIN="$top/$build/vigil"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$top/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
PY=/usr/bin/python3
fail=0
t0=$SECONDS
step() { printf '\n==== %s (%s, at %d s)\n' "$1" "$build" $((SECONDS - t0)); }

step "unit tests"
tests/run-unit.sh "$build"/tests/test_* || fail=1

step "broker black-box tests"
$PY tests/broker/run.py -j 4 || fail=1

# Folders of test programs (test_*.py / test_*.sh), each optional: interop with real clients,
# liveness, and the vigil extensions that have no mosquitto counterpart (so `make compat`, which
# runs tests/broker on both brokers, does not run them): HTTP API, operations, cluster, Docker.
for dir in interop liveness api ops cluster docker; do
	[ -d "tests/$dir" ] || continue
	step "$dir tests"
	for t in tests/"$dir"/test_*; do
		case "$t" in
		*.py) $PY "$t" || fail=1 ;;
		*.sh) bash "$t" || fail=1 ;;
		esac
	done
done

if [ "${VIGIL_SAN:-0}" != 1 ] && [ -x ../shared/conformance/coverage ]; then
	step "conformance coverage"
	$PY ../shared/conformance/coverage tests | tail -2
fi
if [ $fail -ne 0 ]; then
	printf '\n==== FAILED (%s, %d s)\n' "$build" $((SECONDS - t0))
else
	printf '\n==== all tests passed (%s, %d s)\n' "$build" $((SECONDS - t0))
fi
exit $fail
