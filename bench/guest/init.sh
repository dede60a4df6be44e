#!/bin/sh
# isobench guest init: the same rootfs as every runner, booted as an initramfs.
# The workload comes base64-encoded on the kernel command line (bench.cmd=...); its exit code goes
# back over the console as "BENCH-EXIT <code>" (after "BENCH-MEM <MemTotal kB> <MemAvailable kB>"),
# then the guest resets, which the host treats as the end of the domain.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
cmd=
modules=
scratch=
net=
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        bench.cmd=*) cmd=$(echo "${arg#bench.cmd=}" | base64 -d) ;;
        bench.modules=*) modules=$(echo "${arg#bench.modules=}" | tr , ' ') ;;
        bench.scratch=*) scratch=${arg#bench.scratch=} ;;
        bench.net=*) net=${arg#bench.net=} ;;
    esac
done
for m in $modules; do
    insmod "/lib/modules/$m.ko" || echo "BENCH-WARN cannot load $m"
done
hostname bench-vm
ip link set lo up
if [ -n "$net" ]; then  # the host's tap is the only peer: no default route
    ip addr add "$net" dev eth0 && ip link set eth0 up || echo "BENCH-WARN cannot configure eth0"
fi
if [ -n "$scratch" ]; then
    mkdir -p /mnt/scratch && mount -t ext4 "$scratch" /mnt/scratch || echo "BENCH-WARN cannot mount $scratch"
fi
eval "$cmd" </dev/null
code=$?
set -- $(grep -E '^(MemTotal|MemAvailable):' /proc/meminfo)
echo "BENCH-MEM $2 $5"
echo "BENCH-EXIT $code"
# The host destroys the domain as soon as it reads BENCH-EXIT. Should no host be there any more,
# reset after a while (reboot=t and on_reboot=destroy end the domain, no ACPI needed).
sleep 30
reboot -f
