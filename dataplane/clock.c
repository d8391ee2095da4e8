#include "dataplane/clock.h"

#include <stdatomic.h>
#include <time.h>

static bool test_clock_enabled;
static _Atomic uint64_t test_offset_ns;

void lg_clock_init(bool test_clock)
{
	test_clock_enabled = test_clock;
	atomic_store(&test_offset_ns, 0);
}

bool lg_clock_is_test(void)
{
	return test_clock_enabled;
}

uint64_t lg_clock_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec +
	       atomic_load_explicit(&test_offset_ns, memory_order_relaxed);
}

int lg_clock_advance(uint64_t seconds)
{
	if (!test_clock_enabled)
		return -1;
	atomic_fetch_add(&test_offset_ns, seconds * 1000000000ull);
	return 0;
}
