/* Minimal unit-test harness shared by every component's tests.
 * Each test program ends by printing "N passed, N failed"; tests/run adds them up. */
#ifndef LGTEST_H
#define LGTEST_H

#include <stdio.h>
#include <string.h>

static int lgtest_passed, lgtest_failed;

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (cond) {                                                    \
			lgtest_passed++;                                       \
		} else {                                                       \
			lgtest_failed++;                                       \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__,          \
				__LINE__, #cond);                              \
			fprintf(stderr, __VA_ARGS__);                          \
			fputc('\n', stderr);                                   \
		}                                                              \
	} while (0)

#define CHECK_EQ_INT(a, b, what)                                               \
	do {                                                                   \
		long long lgt_a_ = (long long)(a), lgt_b_ = (long long)(b);    \
		CHECK(lgt_a_ == lgt_b_, "%s: got %lld, want %lld", what,       \
		      lgt_a_, lgt_b_);                                         \
	} while (0)

#define CHECK_EQ_STR(a, b, what)                                               \
	do {                                                                   \
		const char *lgt_a_ = (a), *lgt_b_ = (b);                       \
		CHECK(lgt_a_ && lgt_b_ && strcmp(lgt_a_, lgt_b_) == 0,         \
		      "%s: got \"%s\", want \"%s\"", what,                     \
		      lgt_a_ ? lgt_a_ : "(null)", lgt_b_ ? lgt_b_ : "(null)"); \
	} while (0)

static inline int lgtest_finish(void)
{
	printf("%d passed, %d failed\n", lgtest_passed, lgtest_failed);
	return lgtest_failed ? 1 : 0;
}

#endif
