# Runs with the root on /dev/vda: write a file that must survive a reboot.
echo "persisted-ok" > /persist.txt
sync
cat /persist.txt
