#!/bin/sh
# isobench guest init, from a small initramfs. It mounts the guest rootfs (the same tree as every
# runner's, an ext4 disk with serial bench-root, read-only) and runs the workload in it.
# The workload comes base64-encoded on the kernel command line (bench.cmd=...); its exit code goes
# back over the console as "BENCH-EXIT <code>" (after "BENCH-MEM <MemTotal kB> <MemAvailable kB>"),
# then the guest resets, which the host treats as the end of the domain.
# Shell builtins where they do: every other command is a fork and exec, ~5 ms each under emulation.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
read -r cmdline </proc/cmdline
cmd=
modules=
scratch=
net=
for arg in $cmdline; do
    case "$arg" in
        bench.cmd=*) cmd=$(echo "${arg#bench.cmd=}" | base64 -d) ;;
        bench.modules=*) modules=${arg#bench.modules=} ;;
        bench.scratch=*) scratch=${arg#bench.scratch=} ;;
        bench.net=*) net=${arg#bench.net=} ;;
    esac
done
IFS=,
for m in $modules; do
    insmod "/lib/modules/$m.ko" || echo "BENCH-WARN cannot load $m"
done
unset IFS
disk() {  # the virtio disk with serial $1, into $dev
    dev=
    for d in /sys/block/vd*; do
        read -r serial <"$d/serial"  # no newline at its end: read says EOF, yet sets $serial
        [ "$serial" = "$1" ] && dev=/dev/${d##*/}
    done
}
root=/newroot
disk bench-root
mount -t ext4 -o ro "$dev" $root || echo "BENCH-WARN cannot mount the root disk"
mount -t proc proc $root/proc
mount -t sysfs -o ro sysfs $root/sys
mount -t devtmpfs devtmpfs $root/dev
mount -t tmpfs -o mode=1777 tmpfs $root/tmp
echo bench-vm >/proc/sys/kernel/hostname
if [ -n "$net" ]; then  # the host's tap is the only peer: no default route
    ip link set lo up
    ip addr add "$net" dev eth0 && ip link set eth0 up || echo "BENCH-WARN cannot configure eth0"
fi
if [ -n "$scratch" ]; then  # the root is read-only: a tmpfs /mnt holds the mount point
    disk "$scratch"
    mount -t tmpfs -o size=64k tmpfs $root/mnt && mkdir $root/mnt/scratch &&
        mount -t ext4 "$dev" $root/mnt/scratch || echo "BENCH-WARN cannot mount $scratch"
fi
chroot $root /bin/sh -c "$cmd" </dev/null
code=$?
set -- $(grep -E '^(MemTotal|MemAvailable):' /proc/meminfo)
echo "BENCH-MEM $2 $5"
echo "BENCH-EXIT $code"
# The host destroys the domain as soon as it reads BENCH-EXIT. Should no host be there any more,
# reset after a while (reboot=t and on_reboot=destroy end the domain, no ACPI needed).
sleep 30
reboot -f
