/* The corpus of bad configurations (policy/tests/bad): each file's first line says where its
 * first error must be and a part of the message, "# expect LINE:COL TEXT". The check must
 * refuse every one of them with that diagnostic, whatever else it reports. */
#include "lgtest.h"
#include "policy/policy.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check_file(const char *dir, const char *name)
{
	char path[1024], first[256], want[200];
	static struct lg_policy pol;
	static struct lg_diags d;
	unsigned line, col;
	const struct lg_diag *err = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "r");
	if (!f || !fgets(first, sizeof(first), f) ||
	    sscanf(first, "# expect %u:%u %199[^\n]", &line, &col, want) != 3) {
		CHECK(0, "%s: no '# expect LINE:COL TEXT' first line", path);
		if (f)
			fclose(f);
		return;
	}
	fclose(f);
	CHECK(lg_policy_load(path, &pol, &d) < 0, "%s is refused", name);
	for (size_t i = 0; i < d.count && !err; i++)
		if (d.items[i].level == LG_DIAG_ERROR)
			err = &d.items[i];
	if (!err) {
		CHECK(0, "%s: no error reported", name);
		return;
	}
	CHECK(err->line == line && err->col == col, "%s: first error at %u:%u, want %u:%u (%s)", name,
	      err->line, err->col, line, col, err->msg);
	CHECK(strstr(err->msg, want) != NULL, "%s: '%s' lacks '%s'", name, err->msg, want);
}

int main(void)
{
	const char *src = getenv("LG_SOURCE_DIR");
	char dir[512];
	DIR *dh;
	struct dirent *e;
	int files = 0;

	snprintf(dir, sizeof(dir), "%s/policy/tests/bad", src ? src : ".");
	dh = opendir(dir);
	CHECK(dh != NULL, "corpus directory %s", dir);
	while (dh && (e = readdir(dh))) {
		size_t len = strlen(e->d_name);

		if (len > 5 && strcmp(e->d_name + len - 5, ".conf") == 0) {
			check_file(dir, e->d_name);
			files++;
		}
	}
	if (dh)
		closedir(dh);
	CHECK(files >= 20, "the corpus holds %d files", files);
	return lgtest_finish();
}
