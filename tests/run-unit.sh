#!/usr/bin/env bash
# Run Check unit-test binaries; under sanitizers (VIGIL_SAN=1) without fork
# so LeakSanitizer sees every suite's allocations.
set -u
fail=0
for t in "$@"; do
	[ -x "$t" ] || continue
	if [ "${VIGIL_SAN:-0}" = 1 ]; then
		out=$(CK_FORK=no "$t" 2>&1); rc=$?
	else
		out=$("$t" 2>&1); rc=$?
	fi
	summary=$(printf '%s\n' "$out" | grep -E '^[0-9]+%: Checks' | tail -1)
	if [ $rc -ne 0 ]; then
		printf 'FAIL unit %s\n%s\n' "$(basename "$t")" "$out" | tail -40
		fail=1
	else
		printf 'PASS unit %s: %s\n' "$(basename "$t")" "$summary"
	fi
done
exit $fail
