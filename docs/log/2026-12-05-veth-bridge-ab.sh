#!/bin/sh
# iperf3 bulk, 3 s each, server on CPU 1 and client on CPU 0, five interleaved rounds: loopback; a
# veth pair at MTU 1500 with the client's end as a plain interface; the same end on a bridge (the
# address on the bridge, as the container runner's and CNI's bridges have it), with the netns's
# bridge-nf-call-iptables as it comes (1 here) and set to 0. Namespaces made here, removed at the end.
set -e
A=bench-ab-a; B=bench-ab-b
cleanup() { ip netns del $A 2>/dev/null || true; ip netns del $B 2>/dev/null || true; }
trap cleanup EXIT
cleanup; ip netns add $A; ip netns add $B
ip -n $A link set lo up; ip -n $B link set lo up
ip link add bench-ab0 netns $A type veth peer name bench-ab1 netns $B
ip -n $A link add bench-abbr type bridge
ip -n $B addr add 10.219.0.2/30 dev bench-ab1; ip -n $B link set bench-ab1 up
ip -n $A link set bench-ab0 up; ip -n $A link set bench-abbr up
echo "bridge-nf-call-iptables in $A: $(ip netns exec $A cat /proc/sys/net/bridge/bridge-nf-call-iptables)"
run() { # $1 label, $2 netns of the server, $3 address
  ip netns exec $2 taskset -c 1 iperf3 -s -1 -B $3 >/dev/null 2>&1 & sleep 0.5
  ip netns exec $A taskset -c 0 iperf3 -c $3 -t 3 -J | python3 -c "import json,sys; print('$1', round(json.load(sys.stdin)['end']['sum_received']['bits_per_second']/1e9,1))"
  wait
}
plain() { ip -n $A link set bench-ab0 nomaster; ip -n $A addr flush dev bench-abbr; ip -n $A addr add 10.219.0.1/30 dev bench-ab0 2>/dev/null || true; }
bridged() { ip -n $A addr flush dev bench-ab0; ip -n $A link set bench-ab0 master bench-abbr; ip -n $A addr add 10.219.0.1/30 dev bench-abbr 2>/dev/null || true; }
nf() { ip netns exec $A sh -c "echo $1 > /proc/sys/net/bridge/bridge-nf-call-iptables"; }
for i in 1 2 3 4 5; do
  run loopback $A 127.0.0.1
  plain; run veth $B 10.219.0.2
  bridged; nf 1; run veth+bridge-nf1 $B 10.219.0.2
  nf 0; run veth+bridge-nf0 $B 10.219.0.2
done
