/* libFuzzer target: arbitrary bytes as a configuration file. The parser must report what is
 * wrong and never crash, hang or read outside the text; whatever it accepts must be a policy
 * the summary, the rule printer and the reload check can handle. The seed corpus
 * (fuzz/corpus/policy) holds the testbed's configuration and the bad-file corpus. */
#include "policy/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct lg_policy pol, defaults;
static struct lg_diags diags;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *sink;
	char *text = malloc(size ? size : 1), fixed[256];
	struct lg_flow_desc d = { LG_RULE_OUT, LG_RULE_TCP, 4, (const uint8_t *)"\x0a\x00\x00\x02",
				  (const uint8_t *)"\xc6\x33\x64\x02", 143 };

	if (!sink)
		sink = fopen("/dev/null", "w");
	/* an exact-size copy without a terminator: the parser must respect SIZE */
	memcpy(text, data, size);
	if (lg_policy_parse("fuzz.conf", text, size, &pol, &diags) == 0) {
		lg_policy_summary(&pol, sink);
		lg_policy_defaults(&defaults);
		lg_policy_fixed_changes(&defaults, &pol, fixed, sizeof(fixed));
		lg_policy_rules_verdict(&pol, &d, NULL);
	}
	lg_diags_print(&diags, sink);
	free(text);
	return 0;
}
