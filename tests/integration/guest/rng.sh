# The virtio-rng device: /dev/hwrng gives bytes, and virtio is the source.
echo "RNG_CURRENT=$(cat /sys/class/misc/hw_random/rng_current 2>/dev/null || echo missing)"
n=$(head -c 4096 /dev/hwrng 2>/dev/null | wc -c)
echo "HWRNG_BYTES=$n"
# 4096 random bytes hold some nonzero byte (all zero: 2^-32768)
echo "HWRNG_NONZERO=$(head -c 4096 /dev/hwrng 2>/dev/null | tr -d '\000' | wc -c)"
