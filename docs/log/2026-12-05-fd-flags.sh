#!/bin/sh
# every open fd of processes whose comm matches $1, naming bench-fio or a .img/.qcow2, with its flags (O_DIRECT = 040000 octal)
for p in $(pgrep -x "$1"); do
  for fd in /proc/$p/fd/*; do
    t=$(readlink $fd 2>/dev/null)
    case "$t" in *bench-fio*|*scratch*|*.img*|*qcow2*|*snapshot*|*/tmp/vl*) echo "$1 pid=$p $t flags=$(awk '/^flags/{print $2}' /proc/$p/fdinfo/${fd##*/})";; esac
  done
done
