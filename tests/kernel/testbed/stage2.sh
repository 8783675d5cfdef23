#!/bin/sh
# PID 1 after switch_root: the host's userland (read-only 9p + tmpfs overlay) on the guest kernel.
# Runs $OUT/job.sh (written by tests/kernel/testbed.py) as root and writes back, into the run's out dir
# (a writable 9p share mounted at the same path as on the host):
#   log     the job's stdout and stderr
#   rc      its exit status, written last: a missing rc means the guest never finished the job
#   timing  guest uptime at stage2 start, job start and job end
# then powers off. Read live from the repo at every boot, so editing it needs no rebuild.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb
uptime() { cut -d' ' -f1 /proc/uptime; }
mount -t proc proc /proc
mount -t sysfs sys /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs -o mode=0755 tmpfs /run
# /tmp stays the overlay's (host /tmp read-only below, tmpfs above): a checkout under /tmp must stay visible.
OUT=$(sed -n 's/.*kbed\.out=\([^ ]*\).*/\1/p' /proc/cmdline)
mkdir -p "$OUT"
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 out "$OUT"; then
    echo "KBED: cannot mount the out share on $OUT"; busybox poweroff -f
fi
hostname kbed
ip link set lo up
echo "stage2 $(uptime)" >"$OUT/timing"
echo "KBED: stage2 up at $(uptime)s"
if [ -f "$OUT/job.sh" ]; then
    echo "start $(uptime)" >>"$OUT/timing"
    sh "$OUT/job.sh" >"$OUT/log" 2>&1 </dev/null
    rc=$?
    echo "end $(uptime)" >>"$OUT/timing"
    echo "$rc" >"$OUT/rc.tmp" && mv "$OUT/rc.tmp" "$OUT/rc"
    echo "KBED: job rc=$rc at $(uptime)s"
else
    echo "KBED: no job.sh in $OUT"
fi
sync
umount "$OUT" 2>/dev/null
busybox poweroff -f
