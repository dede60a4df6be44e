/* The host's TSC rate in kHz, printed on stdout: TSC ticks against CLOCK_MONOTONIC_RAW over 50 ms.
 * Each end of the interval is the TSC read whose two bracketing clock reads lay closest together,
 * of 50 tries. Under TCG a guest's TSC is the host's TSC, so runners/vm.py tells the guest kernel
 * this rate (tsc_early_khz) rather than let it calibrate against an emulated PIT. */
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <x86intrin.h>

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC_RAW, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void sample(uint64_t *tsc, uint64_t *ns)
{
	uint64_t best = UINT64_MAX;
	for (int i = 0; i < 50; i++) {
		uint64_t before = now_ns(), ticks = __rdtsc(), after = now_ns();
		if (after - before < best) {
			best = after - before;
			*tsc = ticks;
			*ns = before + (after - before) / 2;
		}
	}
}

int main(void)
{
	uint64_t tsc0, ns0, tsc1, ns1;
	struct timespec gap = {0, 50 * 1000 * 1000};
	sample(&tsc0, &ns0);
	nanosleep(&gap, NULL);
	sample(&tsc1, &ns1);
	if (ns1 <= ns0 || tsc1 <= tsc0)
		return 1;
	printf("%llu\n", (unsigned long long)((tsc1 - tsc0) * 1000000u / (ns1 - ns0)));
	return 0;
}
