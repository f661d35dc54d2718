# virtio-blk: root filesystem, persistence, read-only, discard, data integrity.

test_root_on_virtio_blk_persists() {
	cp "$G/rootfs.img" "$T/root.img"
	local cmd="$BASE_CMDLINE root=/dev/vda rw rootfstype=ext4 init=/sbin/init"
	vmm --kernel "$K/bzImage" --disk "$T/root.img" --cmdline "$cmd cove.script=/tests/disk-write.sh"
	script_ok
	console_has '^persisted-ok'
	vmm --kernel "$K/bzImage" --disk "$T/root.img" --cmdline "$cmd cove.script=/tests/disk-read.sh"
	script_ok
	console_has '^persisted-ok'
	e2fsck -fn "$T/root.img" >/dev/null 2>&1 || fail "filesystem not clean after two boots"
}

test_readonly_disk_refuses_writes() {
	dd if=/dev/urandom of="$T/data.img" bs=1M count=4 status=none
	local before after
	before=$(sha256sum <"$T/data.img")
	cp "$G/rootfs.img" "$T/root.img"
	vmm --kernel "$K/bzImage" --initrd "$G/test.cpio" --disk "$T/root.img" \
		--disk "$T/data.img,ro" --cmdline "$BASE_CMDLINE cove.script=/tests/ro-disk.sh" \
		--metrics "$T/metrics.json"
	script_ok
	[ "$(console_value RO)" = 1 ] || fail "guest does not see vdb read-only"
	[ "$(console_value WRITE)" = refused ] || fail "write to the read-only disk was accepted"
	after=$(sha256sum <"$T/data.img")
	[ "$before" = "$after" ] || fail "read-only disk file changed"
}

test_blk_data_integrity() {
	truncate -s 64M "$T/scratch.img"
	vmm --kernel "$K/bzImage" --initrd "$G/test.cpio" --disk "$T/scratch.img" \
		--cmdline "$BASE_CMDLINE cove.script=/tests/blk-io.sh" --cpus 2
	script_ok
	local guest host
	[ "$(console_value BLKIO)" = match ] || fail "data read back differs"
	# What the guest wrote is what the host file holds.
	guest=$(grep -Eo '^BLKIO=match [0-9a-f]{32}' "$T/console" | cut -d' ' -f2) || true
	host=$(head -c 8M "$T/scratch.img" | md5sum | cut -d' ' -f1)
	[ "$guest" = "$host" ] ||
		fail "host file differs from what the guest wrote: guest $guest host $host; console: $(grep BLKIO "$T/console" | od -c | head -5)"
}

test_discard_frees_host_blocks() {
	dd if=/dev/urandom of="$T/discard.img" bs=1M count=32 status=none
	sync
	local before after
	before=$(du -k "$T/discard.img" | cut -f1)
	vmm --kernel "$K/bzImage" --initrd "$G/test.cpio" --disk "$T/discard.img" \
		--cmdline "$BASE_CMDLINE cove.script=/tests/discard.sh"
	script_ok
	console_has '^DISCARD=ok'
	after=$(du -k "$T/discard.img" | cut -f1)
	[ "$(stat -c %s "$T/discard.img")" = $((32 << 20)) ] || fail "file size changed"
	[ "$after" -lt $((before / 4)) ] || fail "host blocks not freed: ${before}k -> ${after}k"
}

test_many_disks() {
	for i in 1 2 3; do truncate -s $((i * 16))M "$T/d$i.img"; done
	vmm --kernel "$K/bzImage" --initrd "$G/test.cpio" --disk "$T/d1.img" --disk "$T/d2.img" \
		--disk "$T/d3.img,ro" --cmdline "$BASE_CMDLINE cove.script=/tests/hello.sh"
	script_ok
}
