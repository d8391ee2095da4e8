/* Passive observation: IMAP, SMTP and ManageSieve sessions followed through segments as they
 * cross, split, repeated, early and late; literals, BDAT chunks and DATA bodies passed over;
 * phases. */
#include "dataplane/observe.h"
#include "lgtest.h"

#include <string.h>

#define CSEQ 1000u
#define SSEQ 5000u

struct conv {
	struct lg_obs_pool *p;
	uint32_t h;
	uint32_t seq[2];
};

static void open_conv(struct conv *c, struct lg_obs_pool *p, enum lg_mail_service svc)
{
	c->p = p;
	c->h = lg_obs_open(p, svc);
	c->seq[0] = CSEQ;
	c->seq[1] = SSEQ;
	lg_obs_segment(p, c->h, true, CSEQ - 1, true, NULL, 0, 0);
	lg_obs_segment(p, c->h, false, SSEQ - 1, true, NULL, 0, 0);
}

/* TEXT from one side, in segments of at most CHUNK bytes, in order. */
static void say(struct conv *c, bool client, const char *text, size_t chunk, uint32_t now)
{
	size_t len = strlen(text);
	int side = client ? 0 : 1;

	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;

		lg_obs_segment(c->p, c->h, client, c->seq[side], false, (const uint8_t *)text + off, n, now);
		c->seq[side] += (uint32_t)n;
	}
}

static struct lg_obs_view view(struct conv *c)
{
	struct lg_obs_view v;

	memset(&v, 0, sizeof(v));
	lg_obs_view(c->p, c->h, &v);
	return v;
}

static void test_imap(void)
{
	struct lg_obs_pool *p = lg_obs_pool_create(16);
	struct conv c;
	struct lg_obs_view v;

	open_conv(&c, p, LG_MAIL_IMAP);
	CHECK(c.h != 0, "a session");
	v = view(&c);
	CHECK_EQ_INT(v.phase, LG_PHASE_GREETING, "waits for the greeting");
	say(&c, false, "* OK [CAPABILITY IMAP4rev1 STARTTLS IDLE LITERAL+ AUTH=PLAIN URLAUTH CATENATE] hi\r\n", 7, 1);
	v = view(&c);
	CHECK_EQ_INT(v.phase, LG_PHASE_PLAINTEXT, "greeting seen, split in 7-byte segments");
	CHECK_EQ_INT(v.server_ext, LG_EXT_STARTTLS | LG_EXT_IDLE | LG_EXT_LITERALP | LG_EXT_AUTH |
				      LG_EXT_URLAUTH | LG_EXT_CATENATE,
		     "capabilities from the greeting's response code");
	say(&c, true, "a1 LOGIN alice secret\r\n", 1, 2);
	say(&c, false, "a1 OK [CAPABILITY IMAP4rev1 IDLE CONDSTORE] done\r\n", 100, 2);
	v = view(&c);
	CHECK_EQ_INT(v.phase, LG_PHASE_AUTHENTICATED, "LOGIN OK: authenticated");
	CHECK_EQ_STR(v.auth, "LOGIN", "LOGIN recorded");
	CHECK(v.server_ext & LG_EXT_CONDSTORE, "capabilities from a tagged response code too");
	/* a literal whose bytes look like a command: passed over, the line goes on after it */
	say(&c, true, "a2 APPEND INBOX (CATENATE (TEXT {16+}\r\nb1 STARTTLS\r\nxx\r\n))\r\n", 5, 3);
	say(&c, false, "a2 OK APPEND done\r\n", 100, 3);
	v = view(&c);
	CHECK_EQ_INT(v.phase, LG_PHASE_AUTHENTICATED, "a STARTTLS inside a literal is data, not a command");
	CHECK(v.client_ext & LG_EXT_CATENATE, "CATENATE used");
	CHECK(v.client_ext & LG_EXT_LITERALP, "LITERAL+ used");
	/* IDLE, pipelined after a NOOP in one segment */
	say(&c, true, "a3 NOOP\r\na4 IDLE\r\n", 100, 10);
	say(&c, false, "a3 OK\r\n+ idling\r\n", 100, 11);
	v = view(&c);
	CHECK_EQ_INT(v.phase, LG_PHASE_IDLE, "in IDLE");
	CHECK_EQ_INT(v.idle_since_s, 11, "since the continuation");
	say(&c, false, "* 4 EXISTS\r\n", 100, 500);
	CHECK_EQ_INT(view(&c).phase, LG_PHASE_IDLE, "still idle after an update");
	say(&c, true, "DONE\r\n", 100, 600);
	CHECK_EQ_INT(view(&c).phase, LG_PHASE_AUTHENTICATED, "DONE ends IDLE");
	say(&c, false, "a4 OK IDLE done\r\n", 100, 600);
	/* a server literal (FETCH) whose bytes look like a tagged OK to STARTTLS */
	say(&c, true, "a5 STARTTLS\r\n", 100, 700);
	say(&c, false, "* 1 FETCH (BODY[] {9}\r\na5 OK xx\r\n)\r\na5 BAD no\r\n", 3, 700);
	CHECK_EQ_INT(view(&c).phase, LG_PHASE_AUTHENTICATED, "a server literal is data; BAD is no TLS");
	say(&c, true, "a6 STARTTLS\r\n", 100, 800);
	say(&c, false, "a6 OK begin TLS\r\n", 100, 800);
	v = view(&c);
	CHECK_EQ_INT(v.phase, LG_PHASE_TLS, "STARTTLS OK: opaque from here");
	CHECK(v.client_ext & LG_EXT_STARTTLS, "STARTTLS used");
	say(&c, false, "\x16\x03\x01 random TLS bytes a7 OK\r\n", 100, 801);
	CHECK_EQ_INT(view(&c).bytes[1], v.bytes[1], "nothing more followed once opaque");
	lg_obs_close(p, c.h);
	CHECK(!lg_obs_view(p, c.h, &v), "closed");
	lg_obs_pool_destroy(p);
}

static void test_segments(void)
{
	struct lg_obs_pool *p = lg_obs_pool_create(16);
	struct conv c;
	const char *greet = "* OK [CAPABILITY IMAP4rev1 IDLE] hi\r\n";
	size_t glen = strlen(greet);

	/* early segment held, then the gap filled; a retransmission and an overlap skipped */
	open_conv(&c, p, LG_MAIL_IMAP);
	lg_obs_segment(p, c.h, false, SSEQ + 10, false, (const uint8_t *)greet + 10, glen - 10, 1);
	CHECK_EQ_INT(view(&c).phase, LG_PHASE_GREETING, "an early segment waits");
	lg_obs_segment(p, c.h, false, SSEQ, false, (const uint8_t *)greet, 12, 1);
	CHECK_EQ_INT(view(&c).phase, LG_PHASE_PLAINTEXT, "the gap filled (overlapping it): greeting seen");
	CHECK_EQ_INT(view(&c).bytes[1], glen, "each byte followed once");
	lg_obs_segment(p, c.h, false, SSEQ, false, (const uint8_t *)greet, glen, 2);
	CHECK_EQ_INT(view(&c).bytes[1], glen, "a retransmission is skipped");
	lg_obs_close(p, c.h);

	/* two early segments: cannot be followed */
	open_conv(&c, p, LG_MAIL_IMAP);
	lg_obs_segment(p, c.h, false, SSEQ + 10, false, (const uint8_t *)"abc", 3, 1);
	lg_obs_segment(p, c.h, false, SSEQ + 20, false, (const uint8_t *)"def", 3, 1);
	CHECK_EQ_INT(view(&c).phase, LG_PHASE_UNKNOWN, "a second gap: unknown, not guessed");
	lg_obs_close(p, c.h);

	/* no SYN seen */
	c.h = lg_obs_open(p, LG_MAIL_IMAP);
	lg_obs_segment(p, c.h, false, 1234, false, (const uint8_t *)"* OK hi\r\n", 9, 1);
	CHECK_EQ_INT(view(&c).phase, LG_PHASE_UNKNOWN, "a stream seen from its middle: unknown");
	lg_obs_close(p, c.h);

	/* a budget */
	open_conv(&c, p, LG_MAIL_IMAP);
	say(&c, false, "* OK hi\r\n", 100, 1);
	for (int i = 0; i < 80; i++)
		say(&c, false, "* 1 FETCH (FLAGS (\\Seen)) ........................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................\r\n", 1000, 1);
	CHECK_EQ_INT(view(&c).phase, LG_PHASE_BUDGET, "followed up to the budget only");
	CHECK(view(&c).bytes[1] <= LG_OBS_BUDGET, "no more than the budget");
	lg_obs_close(p, c.h);
	lg_obs_pool_destroy(p);
}

static void test_smtp(void)
{
	struct lg_obs_pool *p = lg_obs_pool_create(4);
	struct conv c;
	struct lg_obs_view v;

	open_conv(&c, p, LG_MAIL_SUBMISSION);
	say(&c, false, "220 server ESMTP\r\n", 100, 1);
	say(&c, true, "EHLO client\r\n", 100, 1);
	say(&c, false, "250-server greets client\r\n250-PIPELINING\r\n250-BURL imap\r\n250-CHUNKING\r\n"
		       "250-SIZE 10000000\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n", 9, 1);
	v = view(&c);
	CHECK_EQ_INT(v.phase, LG_PHASE_PLAINTEXT, "greeting seen");
	CHECK_EQ_INT(v.server_ext, LG_EXT_PIPELINING | LG_EXT_BURL | LG_EXT_CHUNKING | LG_EXT_SIZE |
				      LG_EXT_AUTH | LG_EXT_STARTTLS,
		     "EHLO keywords");
	say(&c, true, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", 100, 2);
	say(&c, false, "235 2.7.0 ok\r\n", 100, 2);
	v = view(&c);
	CHECK_EQ_INT(v.phase, LG_PHASE_AUTHENTICATED, "AUTH 235: authenticated");
	CHECK_EQ_STR(v.auth, "PLAIN", "mechanism");
	/* a BDAT chunk and a DATA body whose lines look like commands: data */
	say(&c, true, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 12\r\nSTARTTLS\r\nxx", 4, 3);
	say(&c, false, "250 ok\r\n250 ok\r\n250 ok\r\n", 100, 3);
	say(&c, true, "BDAT 0 LAST\r\n", 100, 3);
	say(&c, true, "DATA\r\n", 100, 4);
	say(&c, false, "354 go\r\n", 100, 4);
	say(&c, true, "Subject: x\r\n\r\nSTARTTLS\r\n..STARTTLS\r\n.\r\n", 3, 4);
	say(&c, false, "250 queued\r\n", 100, 4);
	v = view(&c);
	CHECK_EQ_INT(v.phase, LG_PHASE_AUTHENTICATED, "chunk and body bytes are data");
	CHECK(v.client_ext & LG_EXT_CHUNKING, "BDAT used");
	CHECK(!(v.client_ext & LG_EXT_STARTTLS), "no STARTTLS command seen in the data");
	say(&c, true, "BURL imap://u@h/INBOX;uid=1;urlauth=submit+u:internal:abc LAST\r\n", 100, 5);
	CHECK(view(&c).client_ext & LG_EXT_BURL, "BURL used");
	say(&c, true, "STARTTLS\r\n", 100, 6);
	say(&c, false, "220 go ahead\r\n", 100, 6);
	CHECK_EQ_INT(view(&c).phase, LG_PHASE_TLS, "STARTTLS 220: opaque");
	lg_obs_close(p, c.h);

	/* the TLS ports are opaque from the start; the pool is bounded */
	{
		uint32_t a = lg_obs_open(p, LG_MAIL_IMAPS), b = lg_obs_open(p, LG_MAIL_SMTP);
		uint32_t d = lg_obs_open(p, LG_MAIL_SMTP), x = lg_obs_open(p, LG_MAIL_IMAP);
		uint32_t e = lg_obs_open(p, LG_MAIL_SMTP);
		struct lg_obs_view w;
		uint64_t counts[LG_MAIL_SERVICES][LG_PHASE_COUNT];

		CHECK(a && b && d && x && !e, "a pool of 4 gives 4 sessions (the one closed above again)");
		lg_obs_view(p, a, &w);
		CHECK_EQ_INT(w.phase, LG_PHASE_TLS, "imaps: opaque from the start");
		lg_obs_counts(p, counts);
		CHECK(counts[LG_MAIL_IMAPS][LG_PHASE_TLS] == 1 && counts[LG_MAIL_SMTP][LG_PHASE_GREETING] == 2,
		      "sessions counted by service and phase");
		lg_obs_close(p, d);
		e = lg_obs_open(p, LG_MAIL_IMAP);
		CHECK(e && (e & LG_MAX_OBSERVED) == (d & LG_MAX_OBSERVED), "a closed session is handed out again");
		CHECK(e != d && !lg_obs_view(p, d, &w), "under a new handle: the old one reaches nothing");
		lg_obs_segment(p, d, false, 1, true, NULL, 0, 1);
		lg_obs_close(p, d);
		CHECK(lg_obs_view(p, e, &w) && w.service == LG_MAIL_IMAP,
		      "a stale handle neither feeds nor closes the new session");
	}
	lg_obs_pool_destroy(p);
}

static void test_sieve(void)
{
	struct lg_obs_pool *p = lg_obs_pool_create(4);
	struct conv c;
	struct lg_obs_view v;

	open_conv(&c, p, LG_MAIL_SIEVE);
	say(&c, false, "\"IMPLEMENTATION\" \"lemon sieve\"\r\n\"SIEVE\" \"fileinto vacation\"\r\n"
		       "\"SASL\" \"\"\r\n\"STARTTLS\"\r\n\"VERSION\" \"1.0\"\r\nOK \"ready\"\r\n", 5, 1);
	v = view(&c);
	CHECK_EQ_INT(v.phase, LG_PHASE_PLAINTEXT, "sieve: greeting ends at OK");
	CHECK_EQ_INT(v.server_ext, LG_EXT_STARTTLS, "sieve: STARTTLS offered, no SASL before TLS (empty)");
	/* a script whose name and body look like capabilities and commands: data, not protocol */
	say(&c, true, "LISTSCRIPTS\r\nCAPABILITY\r\nPUTSCRIPT \"x\" {18+}\r\nSTARTTLS\r\nOK\r\nNO\r\n\r\n", 6, 2);
	say(&c, false, "\"STARTTLS\" ACTIVE\r\nOK\r\n\"SASL\" \"PLAIN\"\r\nOK\r\n", 4, 2);
	v = view(&c);
	CHECK_EQ_INT(v.server_ext, LG_EXT_STARTTLS | LG_EXT_AUTH,
		     "sieve: the CAPABILITY answer is read, a script named STARTTLS is not");
	CHECK(!(v.client_ext & LG_EXT_STARTTLS), "sieve: STARTTLS inside a literal is data");
	CHECK_EQ_INT(v.phase, LG_PHASE_PLAINTEXT, "sieve: still in the clear");
	say(&c, false, "OK\r\n", 100, 2); /* PUTSCRIPT's answer */
	say(&c, false, "GETSCRIPT\r\n", 100, 2); /* nonsense from the server: no answer taken */
	say(&c, true, "AUTHENTICATE \"PLAIN\"\r\n", 3, 3);
	say(&c, false, "\"\"\r\n", 100, 3);
	say(&c, true, "{24+}\r\nAGFsaWNlAHNlY3JldDEyMzQ=\r\n", 5, 3);
	CHECK_EQ_INT(view(&c).phase, LG_PHASE_PLAINTEXT, "sieve: a SASL exchange is not an answer");
	say(&c, false, "OK\r\n", 100, 3);
	v = view(&c);
	CHECK_EQ_INT(v.phase, LG_PHASE_AUTHENTICATED, "sieve: AUTHENTICATE OK: authenticated");
	CHECK_EQ_STR(v.auth, "PLAIN", "sieve: mechanism");
	say(&c, true, "GETSCRIPT \"x\"\r\n", 100, 4);
	say(&c, false, "{9}\r\nOK\r\nBYE\r\n\r\nOK\r\n", 4, 4);
	say(&c, true, "STARTTLS\r\n", 100, 5);
	CHECK_EQ_INT(view(&c).phase, LG_PHASE_AUTHENTICATED, "sieve: a literal's OK answers nothing");
	say(&c, false, "OK \"go\"\r\n", 100, 5);
	CHECK_EQ_INT(view(&c).phase, LG_PHASE_TLS, "sieve: STARTTLS OK: opaque");
	lg_obs_close(p, c.h);

	/* a refused STARTTLS, then more commands in flight than the observer follows */
	open_conv(&c, p, LG_MAIL_SIEVE);
	say(&c, false, "\"STARTTLS\"\r\nOK\r\n", 100, 1);
	say(&c, true, "STARTTLS\r\n", 100, 1);
	say(&c, false, "NO \"not now\"\r\n", 100, 1);
	CHECK_EQ_INT(view(&c).phase, LG_PHASE_PLAINTEXT, "sieve: STARTTLS NO: still in the clear");
	say(&c, true, "NOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\n", 100, 2);
	CHECK_EQ_INT(view(&c).phase, LG_PHASE_UNKNOWN, "sieve: five commands in flight: unknown, not guessed");
	lg_obs_close(p, c.h);
	lg_obs_pool_destroy(p);
}

/* A session handed out again and again: its generation wraps within the handle's bits and the
 * session still works (it once stopped matching its own handle after 2^17 reuses). */
static void test_reuse(void)
{
	struct lg_obs_pool *p = lg_obs_pool_create(1);
	struct conv c;
	uint32_t first = 0;
	bool distinct = true;

	for (uint32_t i = 0; i < (1u << 15) + 3; i++) {
		uint32_t h = lg_obs_open(p, LG_MAIL_IMAP);

		if (i == 0)
			first = h;
		else if (i < (1u << 14) && h == first)
			distinct = false;
		lg_obs_close(p, h);
	}
	CHECK(distinct, "handles differ until the generation wraps");
	open_conv(&c, p, LG_MAIL_IMAP);
	say(&c, false, "* OK [CAPABILITY IMAP4rev1 IDLE] hi\r\n", 100, 1);
	CHECK(c.h != 0 && view(&c).phase == LG_PHASE_PLAINTEXT && view(&c).server_ext == LG_EXT_IDLE,
	      "after 32771 reuses the session still follows its flow");
	lg_obs_close(p, c.h);
	CHECK(lg_obs_pool_create(LG_MAX_OBSERVED + 1) == NULL, "no pool beyond the handle's index space");
	lg_obs_pool_destroy(p);
}

int main(void)
{
	test_imap();
	test_segments();
	test_smtp();
	test_sieve();
	test_reuse();
	CHECK_EQ_STR(lg_mail_service_name(LG_MAIL_SIEVE), "sieve", "service names");
	CHECK_EQ_STR(lg_obs_phase_name(LG_PHASE_IDLE), "idle", "phase names");
	return lgtest_finish();
}
