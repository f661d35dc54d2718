# Discard the whole disk; the host file should lose its blocks.
blkdiscard /dev/vda && echo DISCARD=ok
