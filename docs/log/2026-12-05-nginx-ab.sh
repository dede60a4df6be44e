#!/bin/bash
# nginx + wrk by hand, no isobench: a 4 KiB file on ext4, nginx on CPU 1, wrk on CPU 0, 3 x 4 s.
set -e
D=/var/tmp/bench-nginx-ab; rm -rf $D; mkdir -p $D/tmp; head -c 4096 /dev/urandom > $D/4k.bin
conf() { # $1 sendfile on|off, $2 tcp_nopush on|off, $3 listen address
cat > $D/nginx.conf <<EOC
user root root; worker_processes 1; pid $D/nginx.pid; error_log stderr;
events { worker_connections 1024; }
http { access_log off; default_type application/octet-stream; sendfile $1; tcp_nopush $2; keepalive_requests 100000;
  client_body_temp_path $D/tmp; proxy_temp_path $D/tmp; fastcgi_temp_path $D/tmp; uwsgi_temp_path $D/tmp; scgi_temp_path $D/tmp;
  server { listen $3:18080; root $D; } }
EOC
}
run() { # $1 label, $2 server netns ("" host), $3 client netns, $4 address
  local sv=() cl=()
  [[ -n $2 ]] && sv=(nsenter --net=/run/netns/$2)
  [[ -n $3 ]] && cl=(nsenter --net=/run/netns/$3)
  "${sv[@]}" taskset -c 1 nginx -e stderr -c $D/nginx.conf -g "daemon off;" & local pid=$!
  sleep 0.5
  local r=()
  local before=$(ip -n bench-ab-s -s -j link show bench-ab0 | python3 -c "import json,sys; s=json.load(sys.stdin)[0]['stats64']; print(s['tx']['packets'], s['rx']['packets'])")
  local total=0
  for i in 1 2 3; do out=$("${cl[@]}" taskset -c 0 wrk --threads 1 --connections 8 --duration 4s http://$4:18080/4k.bin); r+=($(echo "$out" | awk '/Requests\/sec/ {print int($2)}')); total=$((total + $(echo "$out" | awk '/requests in/ {print $1}'))); done
  local after=$(ip -n bench-ab-s -s -j link show bench-ab0 | python3 -c "import json,sys; s=json.load(sys.stdin)[0]['stats64']; print(s['tx']['packets'], s['rx']['packets'])")
  kill $pid; wait $pid 2>/dev/null || true
  python3 -c "b='$before'.split(); a='$after'.split(); n=$total; print('$1: ${r[*]}', ' tx packets/request %.2f, rx packets/request %.2f' % ((int(a[0])-int(b[0]))/n, (int(a[1])-int(b[1]))/n))"
}
ip netns add bench-ab-s; ip netns add bench-ab-c
trap 'ip netns del bench-ab-s; ip netns del bench-ab-c; rm -rf $D' EXIT
ip link add bench-ab0 type veth peer name bench-ab1
ip link set bench-ab0 netns bench-ab-s; ip link set bench-ab1 netns bench-ab-c
ip -n bench-ab-s addr add 10.219.0.1/24 dev bench-ab0; ip -n bench-ab-c addr add 10.219.0.2/24 dev bench-ab1
for n in bench-ab-s bench-ab-c; do ip -n $n link set lo up; done
ip -n bench-ab-s link set bench-ab0 up; ip -n bench-ab-c link set bench-ab1 up
if [[ -n $CC ]]; then ip -n bench-ab-s route replace 10.219.0.0/24 dev bench-ab0 congctl $CC; ip -n bench-ab-c route replace 10.219.0.0/24 dev bench-ab1 congctl $CC; fi
ip -n bench-ab-s route show
for case in "$@"; do
  case $case in
    lo-sendfile) conf on on 127.0.0.1; run "loopback, sendfile on, nopush on" bench-ab-s bench-ab-s 127.0.0.1 ;;
    veth-sendfile) conf on on 10.219.0.1; run "veth, sendfile on, nopush on" bench-ab-s bench-ab-c 10.219.0.1 ;;
    veth-nonopush) conf on off 10.219.0.1; run "veth, sendfile on, nopush off" bench-ab-s bench-ab-c 10.219.0.1 ;;
    veth-nosendfile) conf off on 10.219.0.1; run "veth, sendfile off" bench-ab-s bench-ab-c 10.219.0.1 ;;
    veth-tsooff) conf on on 10.219.0.1; ip netns exec bench-ab-s ethtool -K bench-ab0 tso off gso off >/dev/null; run "veth, sendfile on, server veth tso+gso off" bench-ab-s bench-ab-c 10.219.0.1; ip netns exec bench-ab-s ethtool -K bench-ab0 tso on gso on >/dev/null ;;
    veth-sgoff) conf on on 10.219.0.1; ip netns exec bench-ab-s ethtool -K bench-ab0 sg off >/dev/null; run "veth, sendfile on, server veth sg off" bench-ab-s bench-ab-c 10.219.0.1; ip netns exec bench-ab-s ethtool -K bench-ab0 sg on >/dev/null ;;
    veth-grooff) conf on on 10.219.0.1; ip netns exec bench-ab-c ethtool -K bench-ab1 gro off >/dev/null; run "veth, sendfile on, client veth gro off" bench-ab-s bench-ab-c 10.219.0.1; ip netns exec bench-ab-c ethtool -K bench-ab1 gro on >/dev/null ;;
    strace-nopush) conf on on 10.219.0.1; nsenter --net=/run/netns/bench-ab-s taskset -c 1 nginx -e stderr -c $D/nginx.conf -g "daemon off;" & p=$!; sleep 0.5; w=$(pgrep -P $p); timeout 6 strace -c -f -p $w -o /tmp/bench-strace-on.txt & sleep 0.5; nsenter --net=/run/netns/bench-ab-c taskset -c 0 wrk --threads 1 --connections 8 --duration 4s http://10.219.0.1:18080/4k.bin | grep requests; sleep 2; kill $p; wait $p 2>/dev/null; head -20 /tmp/bench-strace-on.txt ;;
    perf-*) np=${case#perf-}; conf on $np 10.219.0.1; nsenter --net=/run/netns/bench-ab-s taskset -c 1 nginx -e stderr -c $D/nginx.conf -g "daemon off;" & p=$!; sleep 0.5; (nsenter --net=/run/netns/bench-ab-c taskset -c 0 wrk --threads 1 --connections 8 --duration 5s http://10.219.0.1:18080/4k.bin | grep Requests/sec) & sleep 1; perf record -q -C 1 -o /tmp/bench-perf-$np.data -- sleep 3 2>/dev/null; wait %2 2>/dev/null; sleep 2; kill $p; wait $p 2>/dev/null; perf report -q -i /tmp/bench-perf-$np.data --sort symbol --stdio 2>/dev/null | head -25 ;;
    lo1500-sendfile) ip -n bench-ab-s link set lo mtu 1500; conf on on 127.0.0.1; run "loopback at MTU 1500, sendfile on, nopush on" bench-ab-s bench-ab-s 127.0.0.1; ip -n bench-ab-s link set lo mtu 65536 ;;
    offloads) ip netns exec bench-ab-s ethtool -k bench-ab0 | grep -E "^(tcp-segmentation|generic-segmentation|scatter-gather|tx-checksumming|generic-receive)" ;;
  esac
done
