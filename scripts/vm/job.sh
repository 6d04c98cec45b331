#!/bin/sh
# PID 1 of the VM after switch_root: the host's own shell and tools over the
# read-only 9p root with a tmpfs overlay. Runs the suite as root in the repo
# and reports its exit code on the console, where run.mjs looks for it.
. /run/job.env
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 CI=1 BPFKIT_VM=1
hostname bpfkit-vm
# Kernels before 5.11 charge BPF maps and programs to RLIMIT_MEMLOCK, whose
# default (64 KiB there) runs out after a few maps: lift it, as libbpf-based
# tools and services (LimitMEMLOCK=infinity) do. Later kernels ignore it.
ulimit -l unlimited
ip link set lo up
cd "$REPO" || { echo "BPFKIT-VM: no $REPO in the guest"; echo "BPFKIT-VM-EXIT=125"; echo o >/proc/sysrq-trigger; }
echo "BPFKIT-VM: $(uname -r), $(nproc) CPUs; running: $CMD"
sh -c "$CMD"
rc=$?
echo "BPFKIT-VM-EXIT=$rc"
# Power off at once: there is nothing to sync (all writes are in tmpfs).
echo o >/proc/sysrq-trigger
sleep 60
