#include "policy/policy.h"

#include <ctype.h>
#include <stdio.h>

#define LG_DURATION_MAX (100ull * 365 * 86400) /* a century: beyond it is a typo */

static int unit_seconds(char unit, uint64_t *mult)
{
	switch (unit) {
	case 's': *mult = 1; return 0;
	case 'm': *mult = 60; return 0;
	case 'h': *mult = 3600; return 0;
	case 'd': *mult = 86400; return 0;
	default: return -1;
	}
}

int lg_duration_parse(const char *text, uint64_t *seconds)
{
	uint64_t total = 0;
	const char *p = text;
	int last_rank = 5; /* units must come largest first, each at most once */

	if (!text || !*text)
		return -1;
	while (*p) {
		uint64_t value = 0, mult;
		int rank;

		if (!isdigit((unsigned char)*p))
			return -1;
		while (isdigit((unsigned char)*p)) {
			value = value * 10 + (uint64_t)(*p - '0');
			if (value > LG_DURATION_MAX)
				return -1;
			p++;
		}
		if (*p == '\0') {
			if (p != text && total == 0 && last_rank == 5) {
				*seconds = value; /* a bare number means seconds */
				return 0;
			}
			return -1; /* "2h30" is ambiguous */
		}
		if (unit_seconds(*p, &mult) < 0)
			return -1;
		rank = (*p == 'd') ? 4 : (*p == 'h') ? 3 : (*p == 'm') ? 2 : 1;
		if (rank >= last_rank)
			return -1;
		last_rank = rank;
		total += value * mult;
		if (total > LG_DURATION_MAX)
			return -1;
		p++;
	}
	*seconds = total;
	return 0;
}

void lg_duration_format(uint64_t seconds, char *buf, size_t size)
{
	static const struct { char unit; uint64_t secs; } units[] = {
		{ 'd', 86400 }, { 'h', 3600 }, { 'm', 60 }, { 's', 1 },
	};
	size_t used = 0;

	if (size == 0)
		return;
	buf[0] = '\0';
	if (seconds == 0) {
		snprintf(buf, size, "0s");
		return;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		uint64_t n = seconds / units[i].secs;
		int w;

		if (n == 0)
			continue;
		seconds %= units[i].secs;
		w = snprintf(buf + used, size - used, "%llu%c", (unsigned long long)n, units[i].unit);
		if (w < 0 || (size_t)w >= size - used)
			return;
		used += (size_t)w;
	}
}
