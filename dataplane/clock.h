/* The daemon's notion of time. With the test clock enabled, an operator (a test) can move it
 * forward so that timers fire exactly as if that much time had passed. */
#ifndef LG_CLOCK_H
#define LG_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

void lg_clock_init(bool test_clock);
bool lg_clock_is_test(void);
uint64_t lg_clock_now_ns(void);
/* Returns 0, or -1 when the test clock is not enabled. */
int lg_clock_advance(uint64_t seconds);

#endif
