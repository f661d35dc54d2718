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
# A test that fails runs once more, at once and said so: under nested
# emulation a guest now and then dies of the emulator (a triple fault or a
# panic in code cove never touches); a cove bug fails twice. Both outcomes
# are printed with the first failure's diagnostics above them.
passed=0 failed=0 failures=() retried=()
run_one() {
	local start r
	start=$(date +%s.%N)
	( set -e; "$1" )
	r=$?
	elapsed=$(echo "$(date +%s.%N) - $start" | bc)
	return $r
}
for t in $(declare -F | awk '{print $3}' | grep '^test_' | grep -E "${TEST_FILTER:-.}"); do
	if run_one "$t"; then
		passed=$((passed + 1))
		printf 'ok   %-40s %6.1fs\n' "${t#test_}" "$elapsed"
		continue
	fi
	echo "retry ${t#test_}: failed once (above); running it again"
	if run_one "$t"; then
		passed=$((passed + 1))
		retried+=("${t#test_}")
		printf 'ok   %-40s %6.1fs (on retry)\n' "${t#test_}" "$elapsed"
	else
		failed=$((failed + 1))
		failures+=("${t#test_}")
		printf 'FAIL %-40s\n' "${t#test_}"
	fi
done
[ $failed -eq 0 ] || echo "failed: ${failures[*]}"
[ ${#retried[@]} -eq 0 ] || echo "passed on retry: ${retried[*]}"
echo "$passed passed (${#retried[@]} on retry), $failed failed"
[ $failed -eq 0 ]
