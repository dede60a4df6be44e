/* net_rr_us: TCP request/response latency, netperf TCP_RR style: one byte each way, one
 * transaction in flight, TCP_NODELAY. Static, so the same binary runs on the host and in every guest.
 *   bench-rr server ADDR PORT         serve one client, then exit (prints "listening" first)
 *   bench-rr client ADDR PORT SECONDS print "rr_us <mean round trip> transactions <n> seconds <s>" */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

static int client(struct sockaddr_in sa, double seconds)
{
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
	unsigned long n = 0;
	double start, elapsed;
	char c = 'x';
	for (int tries = 0; connect(fd, (struct sockaddr *)&sa, sizeof sa); tries++) {
		if (tries == 50)
			return fail("connect");
		usleep(20000);  /* a guest's link may take a moment to come up */
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	start = now();
	do {
		for (int i = 0; i < 100; i++, n++)
			if (write(fd, &c, 1) != 1 || read(fd, &c, 1) != 1)
				return fail("transaction");
		elapsed = now() - start;
	} while (elapsed < seconds);
	printf("rr_us %.2f transactions %lu seconds %.3f\n", elapsed / n * 1e6, n, elapsed);
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
