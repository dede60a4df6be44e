/* syscalls_s: how many trivial system calls per second (getppid, which libc does not cache). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 2.0, start = now(), elapsed;
	unsigned long calls = 0;
	do {
		for (int i = 0; i < 10000; i++)
			syscall(SYS_getppid);
		calls += 10000;
		elapsed = now() - start;
	} while (elapsed < seconds);
	printf("syscalls_per_s %.0f calls %lu seconds %.3f\n", calls / elapsed, calls, elapsed);
	return 0;
}
