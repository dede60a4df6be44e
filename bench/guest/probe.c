/* The startup probe: prints the READY marker and exits 0. Static, so it runs in any rootfs. */
#include <unistd.h>

int main(void)
{
	static const char marker[] = "READY\n";
	return write(STDOUT_FILENO, marker, sizeof marker - 1) == sizeof marker - 1 ? 0 : 1;
}
