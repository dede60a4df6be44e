#!/bin/sh
# docker run -d of busybox httpd, then curl from the daemon's namespace every ~10 ms until the first
# 200: ms from docker run to that answer, with Docker's bridge and -p, and with --network host.
D="docker -H unix:///run/isobench/docker.sock"; I=isobench/rootfs:0811fe4beef2083b
one() {
  s=$(date +%s%N)
  c=$($D run -d --rm "$@" $I /bin/busybox httpd -f -p 18080 -h /etc)
  until ip netns exec isobench-docker curl -s -o /dev/null -m 0.01 -w '%{http_code}' http://10.215.255.1:18080/hostname 2>/dev/null | grep -q 200; do :; done
  e=$(date +%s%N); $D rm -f $c >/dev/null
  echo $(( (e-s)/1000000 ))
}
for i in 1 2 3; do
  echo "bridge -p: $(one -p 10.215.255.1:18080:18080) ms   host: $(one --network host) ms"
done
