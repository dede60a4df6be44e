#!/bin/sh
# docker's first answer with its bridge and -p against --network host, by hand (log
# 2026-12-05-direct-io-and-the-acceptance-runs.md). busybox httpd in isobench's daemon; curl from the
# daemon's namespace every ~10 ms until a 200. MODE=after: curl starts once `docker run -d` returned;
# MODE=during (as isobench's client): curl starts with `docker run`. RETRANS_MS: the ARP retransmit
# time of docker0 for this script's runs (put back afterwards).
D="docker -H unix:///run/isobench/docker.sock"; I=${IMAGE:-isobench/rootfs:0811fe4beef2083b}
N="ip netns exec isobench-docker"; KNOB=/proc/sys/net/ipv4/neigh/docker0/retrans_time_ms
orig=$($N cat $KNOB); [ -n "$RETRANS_MS" ] && $N sh -c "echo $RETRANS_MS > $KNOB"
trap '$N sh -c "echo $orig > $KNOB"' EXIT
one() {
  s=$(date +%s%N)
  if [ "$MODE" = during ]; then
    $D run -d --rm --name bench-ab-first "$@" $I /bin/busybox httpd -f -p 18080 -h /etc >/dev/null &
  else
    $D run -d --rm --name bench-ab-first "$@" $I /bin/busybox httpd -f -p 18080 -h /etc >/dev/null
  fi
  until $N curl -s -o /dev/null -m 0.01 -w '%{http_code}' http://10.215.255.1:18080/hostname 2>/dev/null | grep -q 200; do :; done
  e=$(date +%s%N); wait; $D rm -f bench-ab-first >/dev/null
  echo $(( (e-s)/1000000 ))
}
for i in 1 2 3; do
  echo "MODE=${MODE:-after} retrans_time_ms=$($N cat $KNOB): bridge -p $(one -p 10.215.255.1:18080:18080) ms, host $(one --network host) ms"
done
