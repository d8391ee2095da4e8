#include "policy/policy.h"

#include "lg_control_proto.h"

#include <stdio.h>
#include <sys/stat.h>

static int default_path(char *buf, size_t size, const char *suffix)
{
	struct stat self, init;
	int n;

	if (stat("/proc/self/ns/net", &self) < 0)
		return -1;
	if (stat("/proc/1/ns/net", &init) == 0 && init.st_ino == self.st_ino &&
	    init.st_dev == self.st_dev)
		n = snprintf(buf, size, "%s/lemongated.%s", LG_CTL_DIR, suffix);
	else
		n = snprintf(buf, size, "%s/lemongated-netns-%llu.%s", LG_CTL_DIR,
			     (unsigned long long)self.st_ino, suffix);
	return (n < 0 || (size_t)n >= size) ? -1 : 0;
}

int lg_control_default_path(char *buf, size_t size)
{
	return default_path(buf, size, "sock");
}

int lg_port_state_default_path(char *buf, size_t size)
{
	return default_path(buf, size, "ports");
}
