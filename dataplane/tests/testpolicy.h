/* The policy the dataplane unit tests start from: the testbed's addressing, defaults else. */
#ifndef LG_TEST_POLICY_H
#define LG_TEST_POLICY_H

#include "policy/policy.h"

#include <arpa/inet.h>
#include <string.h>

static inline void test_policy(struct lg_policy *pol)
{
	lg_policy_defaults(pol);
	strcpy(pol->inside_if, "in");
	strcpy(pol->outside_if, "out");
	lg_prefix4_parse("10.77.0.0/24", &pol->nat_inside[0]);
	pol->nat_inside_count = 1;
	pol->nat_public = inet_addr("198.51.100.1");
}

#endif
