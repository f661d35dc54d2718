# virtio-rng: on by default, fed from the host's getrandom; --no-rng removes it.

test_rng_hwrng() {
	boot_script rng --metrics "$T/metrics.json"
	script_ok || return 1
	case $(console_value RNG_CURRENT) in
	virtio_rng*) ;;
	*) fail "rng_current is '$(console_value RNG_CURRENT)', want virtio_rng.N"; return 1 ;;
	esac
	[ "$(console_value HWRNG_BYTES)" = 4096 ] || fail "read $(console_value HWRNG_BYTES) bytes of /dev/hwrng, want 4096"
	[ "$(console_value HWRNG_NONZERO)" -gt 0 ] || fail "/dev/hwrng gave only zero bytes"
	grep -q '"vrng0":{"requests":[1-9]' "$T/metrics.json" || fail "no vrng0 requests in the metrics: $(cat "$T/metrics.json")"
}

test_rng_off() {
	boot_script rng --no-rng --metrics "$T/metrics.json"
	script_ok || return 1
	[ "$(console_value HWRNG_BYTES)" = 0 ] || fail "--no-rng: /dev/hwrng gave $(console_value HWRNG_BYTES) bytes"
	! grep -q vrng0 "$T/metrics.json" || fail "--no-rng: vrng0 in the metrics"
}
