#!/usr/bin/env bash
# The integration suite: real boots of real kernels on /dev/kvm. Runs where
# /dev/kvm exists (tests/integration/run.sh arranges that). Never skips: a
# test that cannot run fails.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
. tests/integration/lib.sh
for f in tests/integration/test_*.sh; do
	. "$f"
done

if [ ! -c /dev/kvm ]; then
	echo "suite: no /dev/kvm here; run it through tests/integration/run.sh" >&2
	echo "0 passed, 1 failed"
	exit 1
fi

rm -rf "$T"
mkdir -p "$T"
passed=0 failed=0 failures=()
for t in $(declare -F | awk '{print $3}' | grep '^test_' | grep -E "${TEST_FILTER:-.}"); do
	start=$(date +%s.%N)
	( set -e; "$t" )
	r=$?
	if [ $r -eq 0 ]; then
		passed=$((passed + 1))
		printf 'ok   %-40s %6.1fs\n' "${t#test_}" "$(echo "$(date +%s.%N) - $start" | bc)"
	else
		failed=$((failed + 1))
		failures+=("${t#test_}")
		printf 'FAIL %-40s\n' "${t#test_}"
	fi
done
[ $failed -eq 0 ] || echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
