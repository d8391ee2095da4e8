/* The port ledger: what one run leaves, the next one rests (C6888-R8 across restarts). */
#include "dataplane/engine.h"
#include "dataplane/portledger.h"
#include "lgtest.h"
#include "pktbuild.h"
#include "testpolicy.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S (1000000000ull)
#define PUB 0x016433c6u /* 198.51.100.1 */

static char dir[] = "/tmp/lg-ledger-test.XXXXXX";
static uint32_t rest[2 * 65536];

static struct lg_portledger *open1(const char *file, uint32_t addr, uint32_t now, char *err)
{
	return lg_portledger_open(file, &addr, 1, 120, now, rest, err, 256);
}

static char *path(const char *name)
{
	static char buf[128];

	snprintf(buf, sizeof(buf), "%s/%s", dir, name);
	return buf;
}

static size_t resting(void)
{
	size_t n = 0;

	for (size_t p = 0; p < 65536; p++)
		n += rest[p] != 0;
	return n;
}

static void test_ledger(void)
{
	char err[256];
	struct lg_portledger *l;
	uint32_t now = 1800000000u;

	l = open1(path("a.ports"), PUB, now, err);
	CHECK(l != NULL, "fresh ledger opens: %s", err);
	if (!l)
		return;
	CHECK_EQ_INT(resting(), 0, "a fresh ledger rests nothing");
	lg_portledger_used(l, 0, 100);
	lg_portledger_used(l, 0, 200);
	lg_portledger_released(l, 0, 200, now - 30);
	lg_portledger_used(l, 0, 300);
	lg_portledger_released(l, 0, 300, now - 500);
	lg_portledger_close(l); /* as a crash would leave it: nothing more written */

	l = open1(path("a.ports"), PUB, now, err);
	CHECK(l != NULL, "reopened");
	CHECK_EQ_INT(rest[100], 120, "C6888-R8: a port in use at the end rests a full 120 s");
	CHECK_EQ_INT(rest[200], 90, "C6888-R8: a port released 30 s before rests the other 90 s");
	CHECK_EQ_INT(rest[300], 0, "a port released long ago is free");
	CHECK_EQ_INT(resting(), 2, "nothing else rests");
	lg_portledger_close(l);
	l = open1(path("a.ports"), PUB, now + 10, err);
	CHECK_EQ_INT(rest[100], 110, "the in-use port counts as released at the previous open");
	lg_portledger_close(l);
	l = open1(path("a.ports"), PUB, now - 3600, err);
	CHECK_EQ_INT(rest[100], 120, "a clock gone back trusts nothing: full rest");
	lg_portledger_close(l);

	l = open1(path("a.ports"), PUB + 1, now, err);
	CHECK(l != NULL && resting() == 0, "another public address starts afresh");
	lg_portledger_close(l);

	FILE *f = fopen(path("junk.ports"), "w");

	fputs("not a ledger", f);
	fclose(f);
	l = open1(path("junk.ports"), PUB, now, err);
	CHECK(l != NULL && resting() == 0, "a file of the wrong size starts afresh");
	lg_portledger_close(l);

	mkdir(path("adir"), 0700);
	l = open1(path("adir"), PUB, now, err);
	CHECK(l == NULL, "a directory is refused");
	CHECK(strstr(err, "adir") != NULL, "the error names the path: %s", err);
	l = open1("/nonexistent-dir/x.ports", PUB, now, err);
	CHECK(l == NULL, "an unreachable path is refused");
}

/* Sections follow their addresses from one run to the next, whatever the order. */
static void test_addresses(void)
{
	uint32_t two[2] = { PUB, PUB + 1 }, swapped[2] = { PUB + 2, PUB }, now = 1800000000u;
	char err[256];
	struct lg_portledger *l = lg_portledger_open(path("two.ports"), two, 2, 120, now, rest, err,
						     sizeof(err));

	CHECK(l != NULL, "a ledger of two addresses: %s", err);
	if (!l)
		return;
	lg_portledger_used(l, 0, 1000);
	lg_portledger_used(l, 1, 2000);
	lg_portledger_close(l);
	l = lg_portledger_open(path("two.ports"), swapped, 2, 120, now, rest, err, sizeof(err));
	CHECK(l != NULL, "reopened with another address set");
	CHECK_EQ_INT(rest[65536 + 1000], 120, "the first address's port rests, in its new section");
	CHECK_EQ_INT(rest[2000], 0, "a new address starts afresh");
	CHECK_EQ_INT(rest[65536 + 2000], 0, "the dropped address's ports are forgotten");
	lg_portledger_close(l);
	CHECK(lg_portledger_open(path("two.ports"), two, 0, 120, now, rest, err, sizeof(err)) == NULL,
	      "no address: refused");
	unlink(path("two.ports"));
}

static uint16_t syn(struct lg_engine *e, const char *from, uint16_t port, uint64_t now,
		    enum lg_verdict *v)
{
	uint8_t buf[128];
	size_t len = build_tcp4(buf, from, port, "198.51.100.2", 143, LG_TCP_SYN, NULL), out_len;
	bool mod;
	uint16_t pub;

	*v = lg_engine_packet(e, buf, len, now, &mod, &out_len);
	memcpy(&pub, buf + 20, 2);
	return ntohs(pub);
}

/* Two runs of the engine over a two-port range: the port the first run held is not drawn by
 * the second before 120 s, even though the second run has never seen it. */
static void test_restart(void)
{
	struct lg_policy pol;
	struct lg_engine *e;
	struct lg_portledger *l;
	char err[256];
	enum lg_verdict v;
	uint16_t held, other;

	test_policy(&pol);
	pol.port_lo = 30000;
	pol.port_hi = 30001;
	e = lg_engine_create(&pol, 0);
	l = open1(path("run.ports"), pol.nat_public, (uint32_t)time(NULL), err);
	lg_engine_set_port_ledger(e, l, rest, S);
	held = syn(e, "10.77.0.2", 40000, S, &v);
	CHECK_EQ_INT(v, LG_VERDICT_ACCEPT, "first run: a flow");
	lg_engine_destroy(e); /* the daemon dies with the mapping held */
	lg_portledger_close(l);

	e = lg_engine_create(&pol, 0);
	l = open1(path("run.ports"), pol.nat_public, (uint32_t)time(NULL), err);
	CHECK(rest[held] >= 119, "the held port is to rest");
	lg_engine_set_port_ledger(e, l, rest, 5 * S);
	other = syn(e, "10.77.0.3", 40000, 5 * S, &v);
	CHECK(v == LG_VERDICT_ACCEPT && other != held,
	      "C6888-R8: after a restart a new flow gets another port than the one held (%u, %u)",
	      other, held);
	syn(e, "10.77.0.4", 40000, 60 * S, &v);
	CHECK_EQ_INT(v, LG_VERDICT_DROP, "C6888-R8: the held port is not reallocated within 120 s");
	CHECK_EQ_INT(syn(e, "10.77.0.4", 40000, 126 * S, &v), held,
		     "after its rest the port is drawn again");
	CHECK_EQ_INT(v, LG_VERDICT_ACCEPT, "and the flow passes");
	lg_engine_destroy(e);
	lg_portledger_close(l);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_ledger();
	test_addresses();
	test_restart();
	unlink(path("a.ports"));
	unlink(path("junk.ports"));
	unlink(path("run.ports"));
	rmdir(path("adir"));
	rmdir(dir);
	return lgtest_finish();
}
