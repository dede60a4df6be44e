/* net_rr_us: TCP request/response latency, netperf TCP_RR style: one byte each way, one
 * transaction in flight, TCP_NODELAY. Static, so the same binary runs on the host and in every guest.
 *   bench-rr server ADDR PORT         serve one client, then exit (prints "listening" first)
 *   bench-rr client ADDR PORT SECONDS print "rr_us <mean round trip> transactions <n> seconds <s>
 *                                     p50 <us> p99 <us> p999 <us>": every round trip is timed, and
 *                                     the percentiles are of all of them (nearest rank) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int fail(const char *what)
{
	perror(what);
	return 1;
}

/* A blocking read of one byte. gVisor's host network (runsc 20221219, --network=host) returned
   EAGAIN from a blocking socket's read; wait for the byte and read again, as for EINTR. */
static ssize_t read_byte(int fd, char *c)
{
	for (;;) {
		ssize_t got = read(fd, c, 1);
		if (got >= 0 || (errno != EAGAIN && errno != EINTR))
			return got;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		poll(&p, 1, -1);
	}
}

static struct sockaddr_in address(const char *host, const char *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(port))};
	inet_pton(AF_INET, host, &sa.sin_addr);
	return sa;
}

static int server(struct sockaddr_in sa)
{
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0), conn;
	char c;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 1))
		return fail("bind/listen");
	printf("listening\n");
	fflush(stdout);
	if ((conn = accept(fd, NULL, NULL)) < 0)
		return fail("accept");
	setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	while (read(conn, &c, 1) == 1)
		if (write(conn, &c, 1) != 1)
			break;
	return 0;
}

static int by_value(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return (x > y) - (x < y);
}

/* The value at or below which a share q of the sorted round trips lie (nearest rank). */
static float rank(const float *sorted, unsigned long n, double q)
{
	unsigned long i = (unsigned long)(q * n + 0.999999);
	return sorted[(i ? i : 1) - 1];
}

static int client(struct sockaddr_in sa, double seconds)
{
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
	unsigned long n = 0, cap = 1 << 16;
	double start, elapsed, sent;
	char c = 'x';
	float *rtt = malloc(cap * sizeof *rtt);  /* microseconds: a float keeps 0.01 us up to 100 ms */
	if (!rtt)
		return fail("malloc");
	for (int tries = 0; connect(fd, (struct sockaddr *)&sa, sizeof sa); tries++) {
		if (tries == 50)
			return fail("connect");
		usleep(20000);  /* a guest's link may take a moment to come up */
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	start = now();
	do {
		if (n + 100 > cap && !(rtt = realloc(rtt, (cap *= 2) * sizeof *rtt)))
			return fail("realloc");
		for (int i = 0; i < 100; i++, n++) {
			sent = now();
			if (write(fd, &c, 1) != 1 || read_byte(fd, &c) != 1)
				return fail("transaction");
			rtt[n] = (now() - sent) * 1e6;
		}
		elapsed = now() - start;
	} while (elapsed < seconds);
	qsort(rtt, n, sizeof *rtt, by_value);
	printf("rr_us %.2f transactions %lu seconds %.3f p50 %.2f p99 %.2f p999 %.2f\n", elapsed / n * 1e6, n,
	       elapsed, rank(rtt, n, 0.50), rank(rtt, n, 0.99), rank(rtt, n, 0.999));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "server"))
		return server(address(argv[2], argv[3]));
	if (argc == 5 && !strcmp(argv[1], "client"))
		return client(address(argv[2], argv[3]), atof(argv[4]));
	fprintf(stderr, "usage: bench-rr server ADDR PORT | client ADDR PORT SECONDS\n");
	return 2;
}
