#!/bin/busybox sh
# /init of the VM's initramfs. Loads the modules the generic Debian kernels
# keep out of the image (virtio, 9p, overlay), mounts the host's root read-only
# over 9p under a tmpfs overlay so the suite can write (dist/, caches, /tmp)
# without anything reaching the host, and hands over to job.sh in that root.
# Settings come from /job.env, written by scripts/vm/run.mjs.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
. /job.env

fail() {
  echo "BPFKIT-VM: $*"
  echo "BPFKIT-VM-EXIT=125"
  poweroff -f
}

for m in $(cat /modules/order); do
  insmod "/modules/$m" || fail "insmod $m failed"
done

mkdir -p /lower /rw /newroot
# cache=loose: the lower layer is read-only for the guest, so the guest may
# keep what it read; that makes node's many small module reads cheap.
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro hostroot /lower ||
  fail "cannot mount the host root over 9p"
mount -t tmpfs -o mode=0755 rw /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot ||
  fail "cannot mount the overlay over the host root"

R=/newroot
mount -t proc proc $R/proc
mount -t sysfs sys $R/sys
mount -t devtmpfs dev $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o ptmxmode=0666 devpts $R/dev/pts
mount -t tmpfs shm $R/dev/shm
mount -t tmpfs tmp $R/tmp
mount -t tmpfs run $R/run
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup || fail "cannot mount cgroup2"
mount -t bpf bpf $R/sys/fs/bpf || fail "cannot mount bpffs"
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs $R/sys/kernel/tracing 2>/dev/null
# The kernel's own modules (veth, schedulers...) for modprobe and the
# kernel's request_module, from the unpacked package in the host's cache.
mkdir -p "$R/lib/modules/$KVER"
mount --bind "$R$MODDIR" "$R/lib/modules/$KVER" || fail "cannot bind the modules of $KVER"

cp /job.env /job.sh $R/run/
# switch_root, not chroot: user namespaces (the token tests) are refused to
# a chrooted process.
exec switch_root $R /bin/sh /run/job.sh
