/* lemongate-imapd: the IMAP message store of the testbed's lemonade servers. One event loop,
 * no thread per client; commands are executed in arrival order, literals included. It
 * advertises only what it implements (see capabilities()). */
#include "servers/imap/session.h"
#include "servers/imap/urlauth.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define AUTOLOGOUT_S   (31 * 60) /* RFC 3501 5.4: at least 30 minutes */
#define SASL_MAX       4096

struct command {
	const char *name;
	unsigned states; /* bit per enum imap_state */
	void (*run)(struct imap_session *s, const char *tag, struct imap_parser *p);
};

#define ANY_STATE   ((1u << IMAP_NOT_AUTH) | (1u << IMAP_AUTH) | (1u << IMAP_SELECTED))
#define AUTHED      ((1u << IMAP_AUTH) | (1u << IMAP_SELECTED))
#define SELECTED    (1u << IMAP_SELECTED)

static bool auth_allowed(struct imap_session *s)
{
	return srv_tls_active(s->conn) || srv_config()->allow_plaintext_auth;
}

static void capabilities(struct imap_session *s, char *out, size_t size)
{
	size_t n = (size_t)snprintf(out, size, "IMAP4rev1 LITERAL+ SASL-IR ENABLE IDLE NAMESPACE "
					       "UIDPLUS UNSELECT ID CONDSTORE QRESYNC CATENATE URLAUTH");

	if (s->state == IMAP_NOT_AUTH) {
		if (srv_tls_available() && !srv_tls_active(s->conn))
			n += (size_t)snprintf(out + n, size - n, " STARTTLS");
		snprintf(out + n, size - n, "%s", auth_allowed(s) ? " AUTH=PLAIN" : " LOGINDISABLED");
	}
}

static struct imap_session *session_of(struct srv_conn *c)
{
	return srv_state(c);
}

/* ---- output helpers ---- */

void imap_put_string(struct imap_session *s, const char *data, size_t len)
{
	bool quotable = len < 1024;

	for (size_t i = 0; quotable && i < len; i++) {
		unsigned char c = (unsigned char)data[i];

		quotable = c >= 0x20 && c < 0x7f;
	}
	if (!quotable) {
		srv_printf(s->conn, "{%zu}\r\n", len);
		srv_write(s->conn, data, len);
		return;
	}
	srv_write(s->conn, "\"", 1);
	for (size_t i = 0, start = 0; i <= len; i++) {
		if (i == len || data[i] == '"' || data[i] == '\\') {
			srv_write(s->conn, data + start, i - start);
			if (i < len)
				srv_write(s->conn, i < len && data[i] == '"' ? "\\\"" : "\\\\", 2);
			start = i + 1;
		}
	}
	srv_write(s->conn, "\"", 1);
}

void imap_put_nstring(struct imap_session *s, const char *data, size_t len)
{
	if (!data)
		srv_write(s->conn, "NIL", 3);
	else
		imap_put_string(s, data, len);
}

static const struct {
	uint32_t bit;
	const char *name;
} system_flags[] = {
	{ MB_ANSWERED, "\\Answered" }, { MB_FLAGGED, "\\Flagged" }, { MB_DELETED, "\\Deleted" },
	{ MB_SEEN, "\\Seen" },         { MB_DRAFT, "\\Draft" },
};

void imap_put_flags(struct imap_session *s, const struct mb_msg *m)
{
	struct mbox_view v;
	bool first = true;

	mbox_view(s->mb, &v);
	srv_write(s->conn, "(", 1);
	for (size_t i = 0; i < sizeof(system_flags) / sizeof(system_flags[0]); i++)
		if (m->flags & system_flags[i].bit) {
			srv_printf(s->conn, "%s%s", first ? "" : " ", system_flags[i].name);
			first = false;
		}
	if (m->flags & MB_RECENT) {
		srv_printf(s->conn, "%s\\Recent", first ? "" : " ");
		first = false;
	}
	for (size_t k = 0; k < v.keyword_count; k++)
		if (m->keywords & (1ull << k)) {
			srv_printf(s->conn, "%s%s", first ? "" : " ", v.keywords[k]);
			first = false;
		}
	srv_write(s->conn, ")", 1);
}

/* ---- the selected mailbox ---- */

static int view_reserve(struct imap_session *s, size_t n)
{
	if (n <= s->view_cap)
		return 0;
	size_t cap = s->view_cap ? s->view_cap : 64;

	while (cap < n)
		cap *= 2;
	uint32_t *v = realloc(s->view, cap * sizeof(*v));

	if (!v)
		return -1;
	s->view = v;
	s->view_cap = cap;
	return 0;
}

const struct mb_msg *imap_msg_at(struct imap_session *s, uint32_t seq)
{
	struct mbox_view v;
	int i;

	if (!s->mb || seq == 0 || seq > s->view_count)
		return NULL;
	i = mbox_index_of_uid(s->mb, s->view[seq - 1]);
	if (i < 0)
		return NULL;
	mbox_view(s->mb, &v);
	return &v.msgs[i];
}

static size_t recent_count(const struct mbox_view *v)
{
	size_t n = 0;

	for (size_t i = 0; i < v->count; i++)
		n += (v->msgs[i].flags & MB_RECENT) != 0;
	return n;
}

void imap_sync(struct imap_session *s, bool allow_expunge)
{
	struct mbox_view v;
	size_t old_count = s->view_count, i = 0, j = 0;

	if (!s->mb)
		return;
	mbox_view(s->mb, &v);
	if (allow_expunge) {
		struct imap_uid_writer gone;
		size_t kept = 0;

		/* both lists ascend by UID: a merge finds what left the mailbox; with QRESYNC the
		 * UIDs go out as one VANISHED, otherwise one EXPUNGE each, numbered as they go */
		imap_uids_begin(&gone, s, "* VANISHED ");
		for (i = 0; i < s->view_count; i++) {
			while (j < v.count && v.msgs[j].uid < s->view[i])
				j++;
			if (j < v.count && v.msgs[j].uid == s->view[i])
				s->view[kept++] = s->view[i];
			else if (s->qresync)
				imap_uids_add(&gone, s->view[i], s->view[i]);
			else
				srv_printf(s->conn, "* %zu EXPUNGE\r\n", kept + 1);
		}
		imap_uids_end(&gone, "\r\n");
		s->view_count = kept;
		old_count = s->view_count;
		s->expunges_reported = v.highestmodseq;
	}
	uint32_t last = s->view_count ? s->view[s->view_count - 1] : 0;

	for (j = 0; j < v.count; j++) {
		if (v.msgs[j].uid <= last)
			continue;
		if (view_reserve(s, s->view_count + 1) < 0)
			break;
		s->view[s->view_count++] = v.msgs[j].uid;
	}
	if (s->view_count != old_count) {
		srv_printf(s->conn, "* %zu EXISTS\r\n", s->view_count);
		srv_printf(s->conn, "* %zu RECENT\r\n", recent_count(&v));
	}
	if (v.highestmodseq > s->reported_modseq) {
		for (uint32_t seq = 1; seq <= s->view_count; seq++) {
			const struct mb_msg *m = imap_msg_at(s, seq);

			if (!m || m->modseq <= s->reported_modseq || m->uid > last)
				continue;
			srv_printf(s->conn, "* %u FETCH (UID %u FLAGS ", seq, m->uid);
			imap_put_flags(s, m);
			if (s->condstore)
				srv_printf(s->conn, " MODSEQ (%llu)", (unsigned long long)m->modseq);
			srv_write(s->conn, ")\r\n", 3);
		}
		s->reported_modseq = v.highestmodseq;
	}
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

int imap_resolve_set(struct imap_session *s, struct imap_seqset *set, bool uid, uint32_t **seqs,
		     size_t *count)
{
	uint32_t *out = NULL;
	size_t n = 0;

	*seqs = NULL;
	*count = 0;
	if (s->view_count == 0)
		return 0;
	imap_seqset_resolve(set, uid ? s->view[s->view_count - 1] : (uint32_t)s->view_count);
	if (!(out = malloc(s->view_count * sizeof(*out))))
		return -1;
	for (size_t i = 0; i < s->view_count; i++)
		if (imap_seqset_has(set, uid ? s->view[i] : (uint32_t)(i + 1)))
			out[n++] = (uint32_t)(i + 1);
	qsort(out, n, sizeof(*out), cmp_u32);
	*seqs = out;
	*count = n;
	return 0;
}

static void on_deliveries(void *arg)
{
	(void)arg;
	store_changes();
}

static void on_mailbox_change(struct mbox *mb, void *arg)
{
	struct imap_session *s = arg;

	(void)mb;
	if (s->idling)
		imap_sync(s, true);
}

static void unselect(struct imap_session *s)
{
	if (s->mb) {
		mbox_unlisten(s->mb, on_mailbox_change, s);
		mbox_close(s->mb);
	}
	s->mb = NULL;
	s->view_count = 0;
	s->state = IMAP_AUTH;
}

/* ---- mailbox names ---- */

/* The next argument as a mailbox name, canonical (INBOX) and checked; -1 with a tagged reply. */
static int mailbox_arg(struct imap_session *s, const char *tag, struct imap_parser *p, char *out)
{
	struct imap_str name;

	if (imap_astring(p, &name) < 0) {
		srv_printf(s->conn, "%s BAD %s\r\n", tag, p->err);
		return -1;
	}
	if (name.len >= MB_NAME_MAX || memchr(name.s, '\0', name.len)) {
		srv_printf(s->conn, "%s NO [CANNOT] mailbox name too long\r\n", tag);
		return -1;
	}
	memcpy(out, name.s, name.len);
	out[name.len] = '\0';
	store_name_canonical(out);
	return 0;
}

static bool name_ok(struct imap_session *s, const char *tag, const char *name)
{
	if (store_name_valid(name))
		return true;
	srv_printf(s->conn, "%s NO [CANNOT] invalid mailbox name (modified UTF-7, '/' separated)\r\n",
		   tag);
	return false;
}

/* ---- commands, any state ---- */

static void cmd_capability(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	char caps[512];

	if (imap_end(p) < 0) {
		srv_printf(s->conn, "%s BAD CAPABILITY takes no arguments\r\n", tag);
		return;
	}
	capabilities(s, caps, sizeof(caps));
	srv_printf(s->conn, "* CAPABILITY %s\r\n%s OK CAPABILITY completed\r\n", caps, tag);
}

static void cmd_noop(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	if (imap_end(p) < 0) {
		srv_printf(s->conn, "%s BAD NOOP takes no arguments\r\n", tag);
		return;
	}
	if (s->mb) {
		mbox_rescan(s->mb);
		mbox_notify(s->mb);
		imap_sync(s, true);
	}
	srv_printf(s->conn, "%s OK NOOP completed\r\n", tag);
}

static void cmd_logout(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	if (imap_end(p) < 0) {
		srv_printf(s->conn, "%s BAD LOGOUT takes no arguments\r\n", tag);
		return;
	}
	srv_printf(s->conn, "* BYE %s lemongate-imapd logging out\r\n%s OK LOGOUT completed\r\n",
		   srv_config()->hostname, tag);
	unselect(s);
	s->state = IMAP_LOGOUT;
	srv_close_after_flush(s->conn);
}

static void cmd_id(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	(void)p; /* RFC 2971: the client's identification is informative only */
	srv_printf(s->conn, "* ID (\"name\" \"lemongate-imapd\")\r\n%s OK ID completed\r\n", tag);
}

/* ---- not authenticated ---- */

static void cmd_starttls(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	if (imap_end(p) < 0) {
		srv_printf(s->conn, "%s BAD STARTTLS takes no arguments\r\n", tag);
		return;
	}
	if (srv_tls_active(s->conn) || !srv_tls_available()) {
		srv_printf(s->conn, "%s BAD STARTTLS is not available%s\r\n", tag,
			   srv_tls_active(s->conn) ? ": TLS is already active" : "");
		return;
	}
	srv_printf(s->conn, "%s OK Begin TLS negotiation now\r\n", tag);
	srv_starttls(s->conn);
}

static void logged_in(struct imap_session *s, const char *tag, const char *user, const char *what)
{
	char caps[512];

	if (store_user_init(user) < 0) {
		srv_log("%s: cannot prepare the mail store of %s: %s", srv_peer(s->conn), user,
			strerror(errno));
		srv_printf(s->conn, "%s NO [UNAVAILABLE] mail store unavailable\r\n", tag);
		return;
	}
	snprintf(s->user, sizeof(s->user), "%s", user);
	s->state = IMAP_AUTH;
	capabilities(s, caps, sizeof(caps));
	srv_log("%s: %s user=%s%s", srv_peer(s->conn), what, user,
		srv_tls_active(s->conn) ? " tls" : "");
	srv_printf(s->conn, "%s OK [CAPABILITY %s] %s completed\r\n", tag, caps, what);
}

static bool credentials_ok(struct imap_session *s, const char *tag, const char *user,
			   const char *pass)
{
	if (strlen(user) <= IMAP_USER_MAX && srv_auth_check(user, pass))
		return true;
	srv_log("%s: authentication failed for '%.64s'", srv_peer(s->conn), user);
	srv_printf(s->conn, "%s NO [AUTHENTICATIONFAILED] invalid credentials\r\n", tag);
	return false;
}

static void cmd_login(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	struct imap_str u, w;
	char user[IMAP_USER_MAX + 1], pass[256];

	if (imap_astring(p, &u) < 0 || imap_sp(p) < 0 || imap_astring(p, &w) < 0 || imap_end(p) < 0) {
		srv_printf(s->conn, "%s BAD syntax: LOGIN user password\r\n", tag);
		return;
	}
	if (!auth_allowed(s)) {
		srv_printf(s->conn, "%s NO [PRIVACYREQUIRED] use STARTTLS first\r\n", tag);
		return;
	}
	if (u.len > IMAP_USER_MAX || w.len >= sizeof(pass) || memchr(u.s, 0, u.len) ||
	    memchr(w.s, 0, w.len)) {
		srv_printf(s->conn, "%s NO [AUTHENTICATIONFAILED] invalid credentials\r\n", tag);
		return;
	}
	memcpy(user, u.s, u.len);
	user[u.len] = '\0';
	memcpy(pass, w.s, w.len);
	pass[w.len] = '\0';
	if (credentials_ok(s, tag, user, pass))
		logged_in(s, tag, user, "LOGIN");
	explicit_bzero(pass, sizeof(pass));
}

/* SASL PLAIN (RFC 4616): [authzid] NUL authcid NUL passwd, base64 on the wire. */
static void sasl_plain(struct imap_session *s, const char *tag, const char *b64, size_t len)
{
	unsigned char raw[SASL_MAX];
	char user[IMAP_USER_MAX + 1], pass[256];
	const char *authz, *authc, *pw;
	int n;

	if (len == 1 && b64[0] == '=')
		len = 0;
	if (len % 4 || len / 4 * 3 >= sizeof(raw) ||
	    (n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)len)) < 0) {
		srv_printf(s->conn, "%s BAD invalid base64\r\n", tag);
		return;
	}
	if (len >= 1 && b64[len - 1] == '=')
		n--;
	if (len >= 2 && b64[len - 2] == '=')
		n--;
	raw[n] = '\0';
	authz = (const char *)raw;
	authc = memchr(raw, '\0', (size_t)n + 1);
	pw = authc && authc < (const char *)raw + n ? memchr(authc + 1, '\0', (size_t)((const char *)raw + n - authc)) : NULL;
	if (!authc || !pw || pw >= (const char *)raw + n + 1) {
		srv_printf(s->conn, "%s BAD malformed PLAIN response\r\n", tag);
		return;
	}
	authc++;
	pw++;
	if (strlen(authc) > IMAP_USER_MAX || strlen(pw) >= sizeof(pass) ||
	    (*authz && strcmp(authz, authc) != 0) || (const char *)raw + n != pw + strlen(pw)) {
		srv_printf(s->conn, "%s NO [AUTHENTICATIONFAILED] invalid credentials\r\n", tag);
		explicit_bzero(raw, sizeof(raw));
		return;
	}
	snprintf(user, sizeof(user), "%s", authc);
	snprintf(pass, sizeof(pass), "%s", pw);
	explicit_bzero(raw, sizeof(raw));
	if (credentials_ok(s, tag, user, pass))
		logged_in(s, tag, user, "AUTHENTICATE");
	explicit_bzero(pass, sizeof(pass));
}

static void cmd_authenticate(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	struct imap_str mech, ir;

	if (imap_atom(p, &mech) < 0) {
		srv_printf(s->conn, "%s BAD syntax: AUTHENTICATE mechanism [initial-response]\r\n", tag);
		return;
	}
	if (mech.len != 5 || strncasecmp(mech.s, "PLAIN", 5) != 0) {
		srv_printf(s->conn, "%s NO [CANNOT] unsupported mechanism\r\n", tag);
		return;
	}
	if (!auth_allowed(s)) {
		srv_printf(s->conn, "%s NO [PRIVACYREQUIRED] use STARTTLS first\r\n", tag);
		return;
	}
	if (imap_at_end(p)) {
		snprintf(s->pending_tag, sizeof(s->pending_tag), "%s", tag);
		s->authenticating = true;
		srv_printf(s->conn, "+ \r\n");
		return;
	}
	if (imap_sp(p) < 0 || imap_atom(p, &ir) < 0 || imap_end(p) < 0) {
		srv_printf(s->conn, "%s BAD syntax: AUTHENTICATE PLAIN [initial-response]\r\n", tag);
		return;
	}
	sasl_plain(s, tag, ir.s, ir.len);
}

static void auth_continuation(struct imap_session *s, const char *line, size_t len)
{
	s->authenticating = false;
	if (len == 1 && line[0] == '*') {
		srv_printf(s->conn, "%s BAD AUTHENTICATE cancelled\r\n", s->pending_tag);
		return;
	}
	sasl_plain(s, s->pending_tag, line, len);
}

/* ---- authenticated ---- */

/* RFC 5161: CONDSTORE and QRESYNC (which implies CONDSTORE) can be enabled; unknown
 * capabilities are ignored; ENABLED lists what this command turned on. */
static void cmd_enable(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	struct imap_str cap;
	bool condstore = false, qresync = false;

	if (imap_at_end(p)) {
		srv_printf(s->conn, "%s BAD syntax: ENABLE capability...\r\n", tag);
		return;
	}
	for (bool first = true; !imap_at_end(p); first = false) {
		if ((!first && imap_sp(p) < 0) || imap_atom(p, &cap) < 0) {
			srv_printf(s->conn, "%s BAD syntax: ENABLE capability...\r\n", tag);
			return;
		}
		condstore |= cap.len == 9 && strncasecmp(cap.s, "CONDSTORE", 9) == 0;
		qresync |= cap.len == 7 && strncasecmp(cap.s, "QRESYNC", 7) == 0;
	}
	condstore &= !s->condstore;
	qresync &= !s->qresync;
	if (condstore || qresync)
		imap_condstore_on(s);
	if (qresync)
		s->qresync = true;
	srv_printf(s->conn, "* ENABLED%s%s\r\n%s OK ENABLE completed\r\n",
		   condstore ? " CONDSTORE" : "", qresync ? " QRESYNC" : "", tag);
}

static void cmd_namespace(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	if (imap_end(p) < 0) {
		srv_printf(s->conn, "%s BAD NAMESPACE takes no arguments\r\n", tag);
		return;
	}
	srv_printf(s->conn, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n%s OK NAMESPACE completed\r\n", tag);
}

static void cmd_create(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	char name[MB_NAME_MAX];

	if (mailbox_arg(s, tag, p, name) < 0)
		return;
	if (imap_end(p) < 0) {
		srv_printf(s->conn, "%s BAD syntax: CREATE mailbox\r\n", tag);
		return;
	}
	size_t n = strlen(name);

	if (n > 1 && name[n - 1] == '/')
		name[n - 1] = '\0'; /* a trailing delimiter only says children will follow */
	if (!name_ok(s, tag, name))
		return;
	if (store_create(s->user, name) < 0) {
		if (errno == EEXIST)
			srv_printf(s->conn, "%s NO [ALREADYEXISTS] mailbox exists\r\n", tag);
		else
			srv_printf(s->conn, "%s NO [SERVERBUG] cannot create: %s\r\n", tag, strerror(errno));
		return;
	}
	srv_printf(s->conn, "%s OK CREATE completed\r\n", tag);
}

/* The tagged NO for a failed store_delete or store_rename, by errno (RFC 5530 codes). */
static void store_error(struct imap_session *s, const char *tag, const char *invalid)
{
	switch (errno) {
	case ENOENT: srv_printf(s->conn, "%s NO [NONEXISTENT] no such mailbox\r\n", tag); break;
	case EEXIST: srv_printf(s->conn, "%s NO [ALREADYEXISTS] target exists\r\n", tag); break;
	case EBUSY: srv_printf(s->conn, "%s NO [INUSE] mailbox is selected by a session\r\n", tag); break;
	case ENOTEMPTY:
		srv_printf(s->conn, "%s NO [HASCHILDREN] delete its inferiors first\r\n", tag);
		break;
	case EINVAL: srv_printf(s->conn, "%s NO [CANNOT] %s\r\n", tag, invalid); break;
	default: srv_printf(s->conn, "%s NO [SERVERBUG] %s\r\n", tag, strerror(errno));
	}
}

static void cmd_delete(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	char name[MB_NAME_MAX];

	if (mailbox_arg(s, tag, p, name) < 0)
		return;
	if (imap_end(p) < 0) {
		srv_printf(s->conn, "%s BAD syntax: DELETE mailbox\r\n", tag);
		return;
	}
	if (strcmp(name, "INBOX") == 0) {
		srv_printf(s->conn, "%s NO [CANNOT] INBOX cannot be deleted\r\n", tag);
		return;
	}
	if (store_delete(s->user, name) == 0) {
		srv_printf(s->conn, "%s OK DELETE completed\r\n", tag);
		return;
	}
	store_error(s, tag, "invalid mailbox name");
}

static void cmd_rename(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	char from[MB_NAME_MAX], to[MB_NAME_MAX];

	if (mailbox_arg(s, tag, p, from) < 0)
		return;
	if (imap_sp(p) < 0 || mailbox_arg(s, tag, p, to) < 0)
		return;
	if (imap_end(p) < 0) {
		srv_printf(s->conn, "%s BAD syntax: RENAME from to\r\n", tag);
		return;
	}
	if (!name_ok(s, tag, to))
		return;
	if (store_rename(s->user, from, to) == 0) {
		srv_printf(s->conn, "%s OK RENAME completed\r\n", tag);
		return;
	}
	store_error(s, tag, "cannot rename to that name");
}

/* LIST wildcards: '*' matches anything, '%' anything but the delimiter. */
static bool pattern_match(const char *pat, const char *name)
{
	for (; *pat; pat++) {
		if (*pat == '*' || *pat == '%') {
			for (const char *n = name;; n++) {
				if (pattern_match(pat + 1, n))
					return true;
				if (!*n || (*pat == '%' && *n == '/'))
					return false;
			}
		}
		if (*pat != *name)
			return false;
		name++;
	}
	return !*name;
}

struct list_walk {
	struct imap_session *s;
	const char *pattern;
	bool lsub;
	char **names;
	size_t count;
};

static void list_collect(const char *name, void *arg)
{
	struct list_walk *w = arg;
	char **more = realloc(w->names, (w->count + 1) * sizeof(*more));

	if (!more)
		return;
	w->names = more;
	if ((w->names[w->count] = strdup(name)))
		w->count++;
}

static void cmd_list_common(struct imap_session *s, const char *tag, struct imap_parser *p,
			    bool lsub)
{
	struct imap_str ref, pat;
	char pattern[MB_NAME_MAX * 2];
	struct list_walk w = { .s = s, .lsub = lsub };
	const char *cmd = lsub ? "LSUB" : "LIST";

	if (imap_astring(p, &ref) < 0 || imap_sp(p) < 0) {
		srv_printf(s->conn, "%s BAD syntax: %s reference pattern\r\n", tag, cmd);
		return;
	}
	/* list-wildcards are atom-specials, so an unquoted pattern is read by hand */
	char *start = p->p;

	if (imap_peek(p) == '"' || imap_peek(p) == '{') {
		if (imap_string(p, &pat) < 0) {
			srv_printf(s->conn, "%s BAD %s\r\n", tag, p->err);
			return;
		}
	} else {
		while (p->p < p->end && *p->p != ' ' && *p->p != '(' && *p->p != ')' && *p->p != '"')
			p->p++;
		pat = (struct imap_str){ .s = start, .len = (size_t)(p->p - start) };
	}
	if (imap_end(p) < 0 || ref.len + pat.len + 1 >= sizeof(pattern) ||
	    memchr(ref.s, 0, ref.len) || memchr(pat.s, 0, pat.len)) {
		srv_printf(s->conn, "%s BAD syntax: %s reference pattern\r\n", tag, cmd);
		return;
	}
	if (pat.len == 0 && !lsub) {
		srv_printf(s->conn, "* LIST (\\Noselect) \"/\" \"\"\r\n%s OK LIST completed\r\n", tag);
		return;
	}
	memcpy(pattern, ref.s, ref.len);
	memcpy(pattern + ref.len, pat.s, pat.len);
	pattern[ref.len + pat.len] = '\0';
	store_name_canonical(pattern);
	w.pattern = pattern;
	store_list(s->user, list_collect, &w);
	for (size_t i = 0; i < w.count; i++) {
		const char *name = w.names[i];
		bool children = false;
		size_t n = strlen(name);

		for (size_t k = 0; k < w.count; k++)
			children |= strncmp(w.names[k], name, n) == 0 && w.names[k][n] == '/';
		if (pattern_match(pattern, name) && (!lsub || store_subscribed(s->user, name))) {
			srv_printf(s->conn, "* %s (%s) \"/\" ", cmd,
				   children ? "\\HasChildren" : "\\HasNoChildren");
			imap_put_string(s, name, n);
			srv_write(s->conn, "\r\n", 2);
		}
	}
	for (size_t i = 0; i < w.count; i++)
		free(w.names[i]);
	free(w.names);
	srv_printf(s->conn, "%s OK %s completed\r\n", tag, cmd);
}

static void cmd_list(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	cmd_list_common(s, tag, p, false);
}

static void cmd_lsub(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	cmd_list_common(s, tag, p, true);
}

static void subscribe(struct imap_session *s, const char *tag, struct imap_parser *p, bool on)
{
	char name[MB_NAME_MAX];

	if (mailbox_arg(s, tag, p, name) < 0)
		return;
	if (imap_end(p) < 0) {
		srv_printf(s->conn, "%s BAD syntax: %sSUBSCRIBE mailbox\r\n", tag, on ? "" : "UN");
		return;
	}
	if (on && !store_exists(s->user, name)) {
		srv_printf(s->conn, "%s NO [NONEXISTENT] no such mailbox\r\n", tag);
		return;
	}
	if (store_subscribe(s->user, name, on) < 0) {
		srv_printf(s->conn, "%s NO [SERVERBUG] %s\r\n", tag, strerror(errno));
		return;
	}
	srv_printf(s->conn, "%s OK %sSUBSCRIBE completed\r\n", tag, on ? "" : "UN");
}

static void cmd_subscribe(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	subscribe(s, tag, p, true);
}

static void cmd_unsubscribe(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	subscribe(s, tag, p, false);
}

static const char *const status_items[] = { "MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY",
					    "UNSEEN", "HIGHESTMODSEQ" };

static unsigned long long status_value(size_t item, const struct mbox_view *v)
{
	size_t unseen = 0;

	switch (item) {
	case 0: return v->count;
	case 1: return recent_count(v);
	case 2: return v->uidnext;
	case 3: return v->uidvalidity;
	case 5: return v->highestmodseq;
	default:
		for (size_t i = 0; i < v->count; i++)
			unseen += !(v->msgs[i].flags & MB_SEEN);
		return unseen;
	}
}

static void cmd_status(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	char name[MB_NAME_MAX], out[256];
	struct imap_str item;
	struct mbox *mb;
	struct mbox_view v;
	size_t n = 0;

	if (mailbox_arg(s, tag, p, name) < 0)
		return;
	if (imap_sp(p) < 0 || imap_expect(p, '(') < 0) {
		srv_printf(s->conn, "%s BAD syntax: STATUS mailbox (items)\r\n", tag);
		return;
	}
	if (!(mb = mbox_open(s->user, name))) {
		srv_printf(s->conn, "%s NO [NONEXISTENT] no such mailbox\r\n", tag);
		return;
	}
	mbox_view(mb, &v);
	out[0] = '\0';
	for (bool first = true; first || imap_peek(p) != ')'; first = false) {
		size_t k;

		if ((!first && imap_sp(p) < 0) || imap_atom(p, &item) < 0)
			goto bad;
		for (k = 0; k < sizeof(status_items) / sizeof(status_items[0]); k++)
			if (strlen(status_items[k]) == item.len &&
			    strncasecmp(status_items[k], item.s, item.len) == 0)
				break;
		if (k == sizeof(status_items) / sizeof(status_items[0]))
			goto bad;
		if (k == 5)
			imap_condstore_on(s);
		if (n + 40 < sizeof(out))
			n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%s %llu", n ? " " : "",
					      status_items[k], status_value(k, &v));
	}
	p->p++;
	if (imap_end(p) < 0)
		goto bad;
	srv_printf(s->conn, "* STATUS ");
	imap_put_string(s, name, strlen(name));
	srv_printf(s->conn, " (%s)\r\n%s OK STATUS completed\r\n", out, tag);
	mbox_close(mb);
	return;
bad:
	mbox_close(mb);
	srv_printf(s->conn, "%s BAD syntax: STATUS mailbox (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN "
		   "HIGHESTMODSEQ)\r\n", tag);
}

struct select_params {
	bool condstore, qresync, has_known;
	uint32_t uidvalidity;
	uint64_t modseq;
	struct imap_seqset known;
};

/* RFC 7162: [SP "(" (CONDSTORE / QRESYNC (uidvalidity modseq [known-uids [seq-match]])) ")"] */
static int parse_select_params(struct imap_parser *p, struct select_params *o)
{
	struct imap_seqset seqs, uids;
	int more = imap_paren_begin(p);

	if (more <= 0)
		return more;
	for (bool first = true; (more = imap_paren_next(p, &first)) > 0;) {
		if (imap_take_word(p, "CONDSTORE") == 0) {
			o->condstore = true;
			continue;
		}
		if (imap_take_word(p, "QRESYNC") < 0 || o->qresync) {
			p->err = o->qresync ? "QRESYNC given twice" : "unknown SELECT parameter";
			return -1;
		}
		o->qresync = true;
		if (imap_sp(p) < 0 || imap_expect(p, '(') < 0 || imap_nz_number(p, &o->uidvalidity) < 0 ||
		    imap_sp(p) < 0 || imap_number64(p, &o->modseq) < 0)
			return -1;
		if (imap_peek(p) == ' ' && p->p + 1 < p->end && p->p[1] != '(') {
			p->p++;
			if (imap_seqset(p, &o->known) < 0)
				return -1;
			o->has_known = true;
			if (o->known.searchres) {
				p->err = "$ is not a UID set";
				return -1;
			}
		}
		if (imap_peek(p) == ' ') {
			/* the sequence-number-to-UID hint only helps servers without expunge history */
			p->p++;
			if (imap_expect(p, '(') < 0 || imap_seqset(p, &seqs) < 0)
				return -1;
			imap_seqset_free(&seqs);
			if (imap_sp(p) < 0 || imap_seqset(p, &uids) < 0)
				return -1;
			imap_seqset_free(&uids);
			if (imap_expect(p, ')') < 0)
				return -1;
		}
		if (imap_expect(p, ')') < 0)
			return -1;
	}
	return more < 0 ? -1 : imap_end(p);
}

static void select_common(struct imap_session *s, const char *tag, struct imap_parser *p,
			  bool readonly)
{
	char name[MB_NAME_MAX];
	struct mbox *mb;
	struct mbox_view v;
	size_t first_unseen = 0;
	struct select_params o = { 0 };
	const char *cmd = readonly ? "EXAMINE" : "SELECT";

	if (mailbox_arg(s, tag, p, name) < 0)
		return;
	p->err = NULL;
	if (parse_select_params(p, &o) < 0) {
		srv_printf(s->conn, "%s BAD %s (syntax: %s mailbox [(CONDSTORE | QRESYNC (...))])\r\n",
			   tag, p->err ? p->err : "bad parameters", cmd);
		imap_seqset_free(&o.known);
		return;
	}
	if (o.qresync && !s->qresync) {
		srv_printf(s->conn, "%s BAD QRESYNC must be enabled first (ENABLE QRESYNC)\r\n", tag);
		imap_seqset_free(&o.known);
		return;
	}
	if (s->mb) /* RFC 7162 3.2.11 */
		srv_printf(s->conn, "* OK [CLOSED] previous mailbox closed\r\n");
	unselect(s); /* a failed SELECT leaves no mailbox selected (RFC 3501 6.3.1) */
	if (o.condstore)
		imap_condstore_on(s);
	if (!(mb = mbox_open(s->user, name))) {
		srv_printf(s->conn, "%s NO [NONEXISTENT] no such mailbox\r\n", tag);
		imap_seqset_free(&o.known);
		return;
	}
	s->mb = mb;
	s->readonly = readonly;
	mbox_listen(mb, on_mailbox_change, s);
	mbox_view(mb, &v);
	if (view_reserve(s, v.count) < 0) {
		imap_seqset_free(&o.known);
		unselect(s);
		srv_printf(s->conn, "%s NO [SERVERBUG] out of memory\r\n", tag);
		return;
	}
	for (size_t i = 0; i < v.count; i++) {
		s->view[i] = v.msgs[i].uid;
		if (!first_unseen && !(v.msgs[i].flags & MB_SEEN))
			first_unseen = i + 1;
	}
	s->view_count = v.count;
	s->reported_modseq = v.highestmodseq;
	s->expunges_reported = v.highestmodseq;
	s->state = IMAP_SELECTED;
	srv_printf(s->conn, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
	for (size_t k = 0; k < v.keyword_count; k++)
		srv_printf(s->conn, " %s", v.keywords[k]);
	srv_printf(s->conn, ")\r\n* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
	for (size_t k = 0; k < v.keyword_count; k++)
		srv_printf(s->conn, " %s", v.keywords[k]);
	srv_printf(s->conn, "%s)] flags kept\r\n", v.keyword_count < MB_KEYWORDS_MAX ? " \\*" : "");
	srv_printf(s->conn, "* %zu EXISTS\r\n* %zu RECENT\r\n", v.count, recent_count(&v));
	if (first_unseen)
		srv_printf(s->conn, "* OK [UNSEEN %zu] first unseen\r\n", first_unseen);
	srv_printf(s->conn, "* OK [UIDVALIDITY %u] UIDs valid\r\n* OK [UIDNEXT %u] next UID\r\n",
		   v.uidvalidity, v.uidnext);
	srv_printf(s->conn, "* OK [HIGHESTMODSEQ %llu] modification sequences kept\r\n",
		   (unsigned long long)v.highestmodseq);
	if (o.qresync && o.uidvalidity == v.uidvalidity)
		imap_qresync_select(s, o.modseq, o.has_known ? &o.known : NULL);
	imap_seqset_free(&o.known);
	if (!readonly) {
		mbox_clear_recent(mb);
		mbox_commit(mb);
	}
	srv_printf(s->conn, "%s OK [%s] %s completed\r\n", tag, readonly ? "READ-ONLY" : "READ-WRITE",
		   cmd);
}

static void cmd_select(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	select_common(s, tag, p, false);
}

static void cmd_examine(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	select_common(s, tag, p, true);
}

/* "(\Seen $Forwarded)" into system bits and keyword bits of MB (keywords created). */
static int parse_flag_list(struct imap_parser *p, struct mbox *mb, uint32_t *flags,
			   uint64_t *keywords, bool allow_recent)
{
	struct imap_str f;

	*flags = 0;
	*keywords = 0;
	if (imap_expect(p, '(') < 0)
		return -1;
	while (imap_peek(p) != ')') {
		if (*flags || *keywords || p->p[-1] != '(') {
			if (imap_sp(p) < 0)
				return -1;
		}
		if (imap_flag(p, &f) < 0)
			return -1;
		if (f.s[0] == '\\') {
			size_t i;

			for (i = 0; i < sizeof(system_flags) / sizeof(system_flags[0]); i++)
				if (strlen(system_flags[i].name) == f.len &&
				    strncasecmp(system_flags[i].name, f.s, f.len) == 0)
					break;
			if (i < sizeof(system_flags) / sizeof(system_flags[0])) {
				*flags |= system_flags[i].bit;
			} else if (f.len == 7 && strncasecmp(f.s, "\\Recent", 7) == 0 && allow_recent) {
				continue;
			} else {
				p->err = "unknown system flag";
				return -1;
			}
		} else {
			char kw[128];
			int k;

			if (f.len >= sizeof(kw)) {
				p->err = "keyword too long";
				return -1;
			}
			memcpy(kw, f.s, f.len);
			kw[f.len] = '\0';
			k = mbox_keyword(mb, kw, true);
			if (k < 0) {
				p->err = "too many keywords in this mailbox";
				return -1;
			}
			*keywords |= 1ull << k;
		}
	}
	p->p++;
	return 0;
}

/* CATENATE (RFC 4469): "(" TEXT literal / URL url ... ")" assembled into one message;
 * -1 after a tagged reply. */
static int catenate(struct imap_session *s, const char *tag, struct imap_parser *p, char **out,
		    size_t *out_len)
{
	char *msg = NULL;
	size_t len = 0;

	if (imap_sp(p) < 0 || imap_expect(p, '(') < 0)
		goto bad;
	for (bool first = true; imap_peek(p) != ')'; first = false) {
		struct imap_str part;
		char *fetched = NULL;
		const char *data;
		size_t dlen;
		const char *err = NULL;
		bool url;

		if (!first && imap_sp(p) < 0)
			goto bad;
		if (imap_take_word(p, "TEXT") == 0)
			url = false;
		else if (imap_take_word(p, "URL") == 0)
			url = true;
		else
			goto bad;
		if (imap_sp(p) < 0 || (url ? imap_astring(p, &part) : imap_string(p, &part)) < 0 ||
		    (!url && !part.literal))
			goto bad;
		if (url && urlauth_fetch(s->user, part.s, part.len, false, &fetched, &dlen, &err) < 0) {
			srv_printf(s->conn, "%s NO [BADURL %.*s] %s\r\n", tag,
				   (int)(part.len < 1024 ? part.len : 1024), part.s, err);
			free(msg);
			return -1;
		}
		data = url ? fetched : part.s;
		if (!url)
			dlen = part.len;
		char *bigger = len + dlen <= MB_MESSAGE_MAX ? realloc(msg, len + dlen + 1) : NULL;

		if (!bigger) {
			free(fetched);
			free(msg);
			srv_printf(s->conn, "%s NO [TOOBIG] message larger than the limit (64 MiB)\r\n", tag);
			return -1;
		}
		msg = bigger;
		memcpy(msg + len, data, dlen);
		len += dlen;
		free(fetched);
	}
	p->p++;
	if (imap_end(p) < 0)
		goto bad;
	*out = msg;
	*out_len = len;
	return 0;
bad:
	free(msg);
	srv_printf(s->conn, "%s BAD %s\r\n", tag,
		   p->err ? p->err : "syntax: APPEND mailbox [(flags)] [date-time] CATENATE (TEXT literal / URL url ...)");
	return -1;
}

static void cmd_append(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	char name[MB_NAME_MAX];
	struct imap_str msg;
	struct mbox *mb;
	uint32_t flags = 0, uid;
	uint64_t kw = 0;
	int64_t when = time(NULL);
	int zone = 0;
	char *built = NULL;

	if (mailbox_arg(s, tag, p, name) < 0)
		return;
	if (imap_sp(p) < 0) {
		srv_printf(s->conn, "%s BAD syntax: APPEND mailbox [(flags)] [date-time] literal\r\n", tag);
		return;
	}
	if (!(mb = mbox_open(s->user, name))) {
		srv_printf(s->conn, "%s NO [TRYCREATE] no such mailbox\r\n", tag);
		return;
	}
	if (imap_peek(p) == '(' && (parse_flag_list(p, mb, &flags, &kw, false) < 0 || imap_sp(p) < 0))
		goto bad;
	if (imap_peek(p) == '"' && (imap_date_time(p, &when, &zone) < 0 || imap_sp(p) < 0))
		goto bad;
	if (imap_take_word(p, "CATENATE") == 0) {
		if (catenate(s, tag, p, &built, &msg.len) < 0) {
			mbox_commit(mb);
			mbox_close(mb);
			return;
		}
		msg.s = built;
	} else if (imap_string(p, &msg) < 0 || !msg.literal || imap_end(p) < 0) {
		goto bad;
	}
	if (msg.len == 0) {
		free(built);
		mbox_close(mb);
		srv_printf(s->conn, "%s NO [CANNOT] empty message\r\n", tag);
		return;
	}
	int appended = mbox_append(mb, msg.s, msg.len, flags, kw, when, zone, &uid), saved = errno;

	free(built);
	errno = saved;
	if (appended < 0) {
		srv_log("%s: APPEND to %s/%s failed: %s", srv_peer(s->conn), s->user, name,
			strerror(errno));
		srv_printf(s->conn, "%s NO [%s] message not stored\r\n", tag,
			   errno == EFBIG ? "TOOBIG" : "SERVERBUG");
		mbox_close(mb);
		return;
	}
	struct mbox_view v;

	mbox_view(mb, &v);
	mbox_notify(mb);
	if (mb == s->mb)
		imap_sync(s, true); /* RFC 3501 6.3.11: EXISTS for an APPEND to the selected mailbox */
	srv_printf(s->conn, "%s OK [APPENDUID %u %u] APPEND completed\r\n", tag, v.uidvalidity, uid);
	mbox_close(mb);
	return;
bad:
	mbox_commit(mb);
	mbox_close(mb);
	srv_printf(s->conn, "%s BAD %s\r\n", tag, p->err ? p->err : "syntax: APPEND mailbox [(flags)] [date-time] literal");
}

/* ---- URLAUTH (RFC 4467) ---- */

#define URL_MAX 4096

static void cmd_genurlauth(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	char (*out)[URL_MAX + 200] = NULL;
	size_t n = 0;

	do {
		struct imap_str url, mech;
		const char *err;
		void *bigger;

		if (imap_astring(p, &url) < 0 || imap_sp(p) < 0 || imap_atom(p, &mech) < 0 ||
		    url.len > URL_MAX) {
			srv_printf(s->conn, "%s BAD syntax: GENURLAUTH url INTERNAL [url INTERNAL ...]\r\n", tag);
			goto out;
		}
		if (mech.len != 8 || strncasecmp(mech.s, "INTERNAL", 8) != 0) {
			srv_printf(s->conn, "%s NO unknown URLAUTH mechanism (INTERNAL is supported)\r\n", tag);
			goto out;
		}
		if (n >= 64 || !(bigger = realloc(out, (n + 1) * sizeof(*out)))) {
			srv_printf(s->conn, "%s NO [LIMIT] too many URLs in one command\r\n", tag);
			goto out;
		}
		out = bigger;
		if (urlauth_generate(s->user, url.s, url.len, out[n], sizeof(out[n]), &err) < 0) {
			srv_printf(s->conn, "%s NO [BADURL %.*s] %s\r\n", tag, (int)url.len, url.s, err);
			goto out;
		}
		n++;
	} while (!imap_at_end(p) && imap_sp(p) == 0);
	if (imap_end(p) < 0) {
		srv_printf(s->conn, "%s BAD syntax: GENURLAUTH url INTERNAL [url INTERNAL ...]\r\n", tag);
		goto out;
	}
	srv_printf(s->conn, "* GENURLAUTH");
	for (size_t i = 0; i < n; i++) {
		srv_write(s->conn, " ", 1);
		imap_put_string(s, out[i], strlen(out[i]));
	}
	srv_printf(s->conn, "\r\n%s OK GENURLAUTH completed\r\n", tag);
out:
	free(out);
}

static void cmd_urlfetch(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	struct imap_str urls[64];
	size_t n = 0;

	do {
		if (n == 64 || imap_astring(p, &urls[n]) < 0 || urls[n].len > URL_MAX) {
			srv_printf(s->conn, "%s BAD syntax: URLFETCH url [url ...] (at most 64)\r\n", tag);
			return;
		}
		n++;
	} while (!imap_at_end(p) && imap_sp(p) == 0);
	if (imap_end(p) < 0) {
		srv_printf(s->conn, "%s BAD syntax: URLFETCH url [url ...]\r\n", tag);
		return;
	}
	/* RFC 4467 3.4: a URL that cannot be fetched gets NIL; the command still succeeds */
	srv_printf(s->conn, "* URLFETCH");
	for (size_t i = 0; i < n; i++) {
		char *data;
		size_t len;
		const char *err;

		srv_write(s->conn, " ", 1);
		imap_put_string(s, urls[i].s, urls[i].len);
		if (urlauth_fetch(s->user, urls[i].s, urls[i].len, true, &data, &len, &err) < 0) {
			srv_log("%s: URLFETCH by %s refused: %s", srv_peer(s->conn), s->user, err);
			srv_write(s->conn, " NIL", 4);
			continue;
		}
		srv_printf(s->conn, " {%zu}\r\n", len);
		srv_write(s->conn, data, len);
		free(data);
	}
	srv_printf(s->conn, "\r\n%s OK URLFETCH completed\r\n", tag);
}

static void cmd_resetkey(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	char name[MB_NAME_MAX];
	struct imap_str mech;

	if (imap_at_end(p)) {
		if (urlauth_reset(s->user, NULL) < 0)
			srv_printf(s->conn, "%s NO [SERVERBUG] keys not reset\r\n", tag);
		else
			srv_printf(s->conn, "%s OK RESETKEY completed: every URL issued so far is void\r\n", tag);
		return;
	}
	if (mailbox_arg(s, tag, p, name) < 0)
		return;
	while (!imap_at_end(p))
		if (imap_sp(p) < 0 || imap_atom(p, &mech) < 0 || mech.len != 8 ||
		    strncasecmp(mech.s, "INTERNAL", 8) != 0) {
			srv_printf(s->conn, "%s BAD syntax: RESETKEY [mailbox [INTERNAL]]\r\n", tag);
			return;
		}
	if (!store_exists(s->user, name)) {
		srv_printf(s->conn, "%s NO [NONEXISTENT] no such mailbox\r\n", tag);
		return;
	}
	if (urlauth_reset(s->user, name) < 0)
		srv_printf(s->conn, "%s NO [SERVERBUG] key not reset\r\n", tag);
	else
		srv_printf(s->conn, "%s OK RESETKEY completed\r\n", tag);
}

/* ---- selected ---- */

static void cmd_check(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	if (imap_end(p) < 0) {
		srv_printf(s->conn, "%s BAD CHECK takes no arguments\r\n", tag);
		return;
	}
	if (mbox_commit(s->mb) < 0) {
		srv_printf(s->conn, "%s NO [SERVERBUG] cannot save the mailbox\r\n", tag);
		return;
	}
	mbox_rescan(s->mb);
	mbox_notify(s->mb);
	imap_sync(s, true);
	srv_printf(s->conn, "%s OK CHECK completed\r\n", tag);
}

static bool uid_in_set(uint32_t uid, void *arg)
{
	return imap_seqset_has(arg, uid);
}

static int expunge(struct imap_session *s, struct imap_seqset *only)
{
	uint32_t *uids;
	size_t n;
	int rc = mbox_expunge(s->mb, only ? uid_in_set : NULL, only, &uids, &n);

	free(uids);
	if (n)
		mbox_notify(s->mb);
	return rc;
}

/* RFC 7162 3.2.10 (and 3.1 for CONDSTORE): the tagged OK of an expunge tells where the
 * mailbox now stands */
static void expunge_done(struct imap_session *s, const char *tag, const char *what)
{
	struct mbox_view v;

	mbox_view(s->mb, &v);
	if (s->condstore)
		srv_printf(s->conn, "%s OK [HIGHESTMODSEQ %llu] %s completed\r\n", tag,
			   (unsigned long long)v.highestmodseq, what);
	else
		srv_printf(s->conn, "%s OK %s completed\r\n", tag, what);
}

static void cmd_expunge(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	if (imap_end(p) < 0) {
		srv_printf(s->conn, "%s BAD EXPUNGE takes no arguments\r\n", tag);
		return;
	}
	if (s->readonly) {
		srv_printf(s->conn, "%s NO [READ-ONLY] mailbox is read-only\r\n", tag);
		return;
	}
	if (expunge(s, NULL) < 0) {
		srv_printf(s->conn, "%s NO [SERVERBUG] expunge failed\r\n", tag);
		return;
	}
	imap_sync(s, true);
	expunge_done(s, tag, "EXPUNGE");
}

static void cmd_uid_expunge(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	struct imap_seqset set;

	if (imap_seqset(p, &set) < 0 || imap_end(p) < 0 || set.searchres) {
		imap_seqset_free(&set);
		srv_printf(s->conn, "%s BAD syntax: UID EXPUNGE uid-set\r\n", tag);
		return;
	}
	if (s->readonly) {
		imap_seqset_free(&set);
		srv_printf(s->conn, "%s NO [READ-ONLY] mailbox is read-only\r\n", tag);
		return;
	}
	struct mbox_view v;

	mbox_view(s->mb, &v);
	imap_seqset_resolve(&set, v.uidnext > 1 ? v.uidnext - 1 : 1);
	int rc = expunge(s, &set);

	imap_seqset_free(&set);
	imap_sync(s, true);
	if (rc < 0)
		srv_printf(s->conn, "%s NO [SERVERBUG] expunge failed\r\n", tag);
	else
		expunge_done(s, tag, "UID EXPUNGE");
}

static void cmd_close(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	if (imap_end(p) < 0) {
		srv_printf(s->conn, "%s BAD CLOSE takes no arguments\r\n", tag);
		return;
	}
	if (!s->readonly) {
		mbox_unlisten(s->mb, on_mailbox_change, s); /* CLOSE reports no EXPUNGE */
		expunge(s, NULL);
	}
	unselect(s);
	srv_printf(s->conn, "%s OK CLOSE completed\r\n", tag);
}

static void cmd_unselect(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	if (imap_end(p) < 0) {
		srv_printf(s->conn, "%s BAD UNSELECT takes no arguments\r\n", tag);
		return;
	}
	unselect(s);
	srv_printf(s->conn, "%s OK UNSELECT completed\r\n", tag);
}

static void copy_common(struct imap_session *s, const char *tag, struct imap_parser *p, bool use_uid)
{
	struct imap_seqset set;
	char name[MB_NAME_MAX];
	uint32_t *seqs = NULL, *src_uids = NULL, *dst_uids = NULL;
	size_t n = 0, done = 0;
	struct mbox *dst;

	if (imap_seqset(p, &set) < 0 || set.searchres || imap_sp(p) < 0) {
		imap_seqset_free(&set);
		srv_printf(s->conn, "%s BAD syntax: COPY set mailbox\r\n", tag);
		return;
	}
	if (mailbox_arg(s, tag, p, name) < 0) {
		imap_seqset_free(&set);
		return;
	}
	if (imap_end(p) < 0) {
		srv_printf(s->conn, "%s BAD syntax: COPY set mailbox\r\n", tag);
		imap_seqset_free(&set);
		return;
	}
	if (!(dst = mbox_open(s->user, name))) {
		imap_seqset_free(&set);
		srv_printf(s->conn, "%s NO [TRYCREATE] no such mailbox\r\n", tag);
		return;
	}
	if (!use_uid) {
		for (size_t i = 0; i < set.n; i++)
			if ((set.r[i].lo != IMAP_SEQ_STAR && set.r[i].lo > s->view_count) ||
			    (set.r[i].hi != IMAP_SEQ_STAR && set.r[i].hi > s->view_count)) {
				imap_seqset_free(&set);
				mbox_close(dst);
				srv_printf(s->conn, "%s BAD no such message\r\n", tag);
				return;
			}
	}
	imap_resolve_set(s, &set, use_uid, &seqs, &n);
	imap_seqset_free(&set);
	src_uids = calloc(n + 1, sizeof(*src_uids));
	dst_uids = calloc(n + 1, sizeof(*dst_uids));
	for (size_t i = 0; src_uids && dst_uids && i < n; i++) {
		const struct mb_msg *m = imap_msg_at(s, seqs[i]);
		uint32_t uid;

		if (!m)
			continue;
		src_uids[done] = m->uid;
		if (mbox_copy(s->mb, m, dst, &uid) < 0)
			break;
		dst_uids[done++] = uid;
	}
	if (done)
		mbox_notify(dst);
	if (done && dst == s->mb)
		imap_sync(s, true);
	if (!src_uids || !dst_uids || (done < n && n)) {
		srv_printf(s->conn, "%s NO [SERVERBUG] copy incomplete (%zu of %zu)\r\n", tag, done, n);
	} else if (done == 0) {
		srv_printf(s->conn, "%s OK %sCOPY completed, nothing to copy\r\n", tag, use_uid ? "UID " : "");
	} else {
		struct imap_uid_writer w;
		struct mbox_view v;
		char prefix[64];

		/* source UIDs ascend with the sequence numbers, new UIDs as they were given out */
		mbox_view(dst, &v);
		snprintf(prefix, sizeof(prefix), "%s OK [COPYUID %u ", tag, v.uidvalidity);
		imap_uids_begin(&w, s, prefix);
		for (size_t i = 0; i < done; i++)
			imap_uids_add(&w, src_uids[i], src_uids[i]);
		imap_uids_end(&w, " ");
		imap_uids_begin(&w, s, "");
		for (size_t i = 0; i < done; i++)
			imap_uids_add(&w, dst_uids[i], dst_uids[i]);
		imap_uids_end(&w, "");
		srv_printf(s->conn, "] %sCOPY completed\r\n", use_uid ? "UID " : "");
	}
	free(seqs);
	free(src_uids);
	free(dst_uids);
	mbox_close(dst);
}

static void cmd_copy(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	copy_common(s, tag, p, false);
}

static void cmd_fetch(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	imap_cmd_fetch(s, tag, p, false);
}

static void cmd_store(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	imap_cmd_store(s, tag, p, false);
}

static void cmd_search(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	imap_cmd_search(s, tag, p, false);
}

static void cmd_uid(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	if (imap_take_word(p, "FETCH") == 0 && imap_sp(p) == 0)
		imap_cmd_fetch(s, tag, p, true);
	else if (imap_take_word(p, "STORE") == 0 && imap_sp(p) == 0)
		imap_cmd_store(s, tag, p, true);
	else if (imap_take_word(p, "COPY") == 0 && imap_sp(p) == 0)
		copy_common(s, tag, p, true);
	else if (imap_take_word(p, "SEARCH") == 0 && imap_sp(p) == 0)
		imap_cmd_search(s, tag, p, true);
	else if (imap_take_word(p, "EXPUNGE") == 0 && imap_sp(p) == 0)
		cmd_uid_expunge(s, tag, p);
	else
		srv_printf(s->conn, "%s BAD UID takes FETCH, STORE, COPY, SEARCH or EXPUNGE\r\n", tag);
}

static void cmd_idle(struct imap_session *s, const char *tag, struct imap_parser *p)
{
	if (imap_end(p) < 0) {
		srv_printf(s->conn, "%s BAD IDLE takes no arguments\r\n", tag);
		return;
	}
	snprintf(s->pending_tag, sizeof(s->pending_tag), "%s", tag);
	s->idling = true;
	srv_printf(s->conn, "+ idling\r\n");
	if (s->mb) {
		mbox_rescan(s->mb);
		mbox_notify(s->mb);
		imap_sync(s, true);
	}
}

static const struct command commands[] = {
	{ "CAPABILITY", ANY_STATE, cmd_capability },
	{ "NOOP", ANY_STATE, cmd_noop },
	{ "LOGOUT", ANY_STATE, cmd_logout },
	{ "ID", ANY_STATE, cmd_id },
	{ "STARTTLS", 1u << IMAP_NOT_AUTH, cmd_starttls },
	{ "LOGIN", 1u << IMAP_NOT_AUTH, cmd_login },
	{ "AUTHENTICATE", 1u << IMAP_NOT_AUTH, cmd_authenticate },
	{ "ENABLE", AUTHED, cmd_enable },
	{ "NAMESPACE", AUTHED, cmd_namespace },
	{ "SELECT", AUTHED, cmd_select },
	{ "EXAMINE", AUTHED, cmd_examine },
	{ "CREATE", AUTHED, cmd_create },
	{ "DELETE", AUTHED, cmd_delete },
	{ "RENAME", AUTHED, cmd_rename },
	{ "SUBSCRIBE", AUTHED, cmd_subscribe },
	{ "UNSUBSCRIBE", AUTHED, cmd_unsubscribe },
	{ "LIST", AUTHED, cmd_list },
	{ "LSUB", AUTHED, cmd_lsub },
	{ "STATUS", AUTHED, cmd_status },
	{ "APPEND", AUTHED, cmd_append },
	{ "IDLE", AUTHED, cmd_idle },
	{ "GENURLAUTH", AUTHED, cmd_genurlauth },
	{ "URLFETCH", AUTHED, cmd_urlfetch },
	{ "RESETKEY", AUTHED, cmd_resetkey },
	{ "CHECK", SELECTED, cmd_check },
	{ "CLOSE", SELECTED, cmd_close },
	{ "UNSELECT", SELECTED, cmd_unselect },
	{ "EXPUNGE", SELECTED, cmd_expunge },
	{ "SEARCH", SELECTED, cmd_search },
	{ "FETCH", SELECTED, cmd_fetch },
	{ "STORE", SELECTED, cmd_store },
	{ "COPY", SELECTED, cmd_copy },
	{ "UID", SELECTED, cmd_uid },
};

static bool tag_char(int c)
{
	return c > 0x20 && c < 0x7f && !strchr("(){%*\"\\+", c);
}

/* Commands after which an EXPUNGE may not be sent: their sequence numbers would shift. */
static bool blocks_expunge(const char *name, size_t len)
{
	return (len == 5 && (strncasecmp(name, "FETCH", 5) == 0 || strncasecmp(name, "STORE", 5) == 0)) ||
	       (len == 6 && strncasecmp(name, "SEARCH", 6) == 0);
}

static void execute(struct imap_session *s, char *buf, size_t len)
{
	struct imap_parser p;
	struct imap_str cmd;
	char tag[IMAP_TAG_MAX + 1];
	size_t tl = 0;

	while (tl < len && tag_char((unsigned char)buf[tl]))
		tl++;
	if (tl == 0 || tl > IMAP_TAG_MAX || tl >= len || buf[tl] != ' ') {
		srv_printf(s->conn, "* BAD expected: tag SP command\r\n");
		return;
	}
	memcpy(tag, buf, tl);
	tag[tl] = '\0';
	imap_p_init(&p, buf + tl + 1, len - tl - 1);
	if (imap_atom(&p, &cmd) < 0) {
		srv_printf(s->conn, "%s BAD expected a command name\r\n", tag);
		return;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		const struct command *c = &commands[i];

		if (strlen(c->name) != cmd.len || strncasecmp(c->name, cmd.s, cmd.len) != 0)
			continue;
		if (!(c->states & (1u << s->state))) {
			srv_printf(s->conn, "%s BAD %s is not allowed %s\r\n", tag, c->name,
				   s->state == IMAP_NOT_AUTH ? "before authentication" :
				   s->state == IMAP_AUTH && (c->states & SELECTED) ? "without a selected mailbox" :
				   "after authentication");
			return;
		}
		if (!imap_at_end(&p) && imap_sp(&p) < 0) {
			srv_printf(s->conn, "%s BAD expected a space after the command name\r\n", tag);
			return;
		}
		/* what changed since the last command goes out while this one is in progress: an
		 * EXPUNGE may not be sent when no command is (RFC 3501 7.4.1) */
		if (s->state == IMAP_SELECTED)
			imap_sync(s, strcmp(c->name, "UID") == 0 || !blocks_expunge(cmd.s, cmd.len));
		c->run(s, tag, &p);
		if (s->state != IMAP_NOT_AUTH)
			srv_set_timeout(s->conn, AUTOLOGOUT_S);
		return;
	}
	srv_printf(s->conn, "%s BAD unknown command\r\n", tag);
}

/* ---- command assembly: lines and literals ---- */

static int cmd_add(struct imap_session *s, const char *data, size_t len)
{
	if (s->cmd_len + len + 1 > s->cmd_cap) {
		size_t cap = s->cmd_cap ? s->cmd_cap : 1024;

		while (cap < s->cmd_len + len + 1)
			cap *= 2;
		char *bigger = realloc(s->cmd, cap);

		if (!bigger)
			return -1;
		s->cmd = bigger;
		s->cmd_cap = cap;
	}
	memcpy(s->cmd + s->cmd_len, data, len);
	s->cmd_len += len;
	s->cmd[s->cmd_len] = '\0';
	return 0;
}

static void cmd_reset(struct imap_session *s)
{
	free(s->cmd);
	s->cmd = NULL;
	s->cmd_len = s->cmd_cap = 0;
	s->cmd_limit = 0;
	s->discarding = false;
}

/* Only APPEND carries messages; its literals may reach the message size limit. */
static bool is_append(const struct imap_session *s)
{
	const char *sp = memchr(s->cmd, ' ', s->cmd_len);

	return sp && (size_t)(s->cmd + s->cmd_len - sp) > 7 && strncasecmp(sp + 1, "APPEND ", 7) == 0;
}

static void current_tag(const struct imap_session *s, char *tag)
{
	size_t tl = 0;

	while (tl < s->cmd_len && tl < IMAP_TAG_MAX && tag_char((unsigned char)s->cmd[tl]))
		tl++;
	memcpy(tag, s->cmd, tl);
	tag[tl] = '\0';
	if (!tl)
		strcpy(tag, "*");
}

static void refuse_command(struct imap_session *s, const char *why)
{
	char tag[IMAP_TAG_MAX + 1];

	current_tag(s, tag);
	srv_printf(s->conn, "%s NO [TOOBIG] %s\r\n", tag, why);
	cmd_reset(s);
}

static void imap_line(struct srv_conn *c, char *line, size_t len)
{
	struct imap_session *s = session_of(c);
	uint64_t lit;
	bool sync;
	int r;

	if (s->authenticating) {
		auth_continuation(s, line, len);
		return;
	}
	if (s->idling) {
		s->idling = false;
		if (len == 4 && strncasecmp(line, "DONE", 4) == 0)
			srv_printf(c, "%s OK IDLE terminated\r\n", s->pending_tag);
		else
			srv_printf(c, "%s BAD expected DONE to end IDLE\r\n", s->pending_tag);
		srv_set_timeout(c, AUTOLOGOUT_S);
		return;
	}
	if (!s->cmd_limit)
		s->cmd_limit = IMAP_CMD_MAX;
	r = imap_line_literal(line, len, &lit, &sync);
	if (s->discarding) {
		if (r == 1 && !sync) {
			srv_read_bytes(c, lit);
			return;
		}
		refuse_command(s, s->discard_reason);
		return;
	}
	if (cmd_add(s, line, len) < 0 || cmd_add(s, "\r\n", r == 1 ? 2 : 0) < 0) {
		refuse_command(s, "out of memory");
		return;
	}
	if (r < 0) {
		char tag[IMAP_TAG_MAX + 1];

		current_tag(s, tag);
		srv_printf(c, "%s BAD bad literal size\r\n", tag);
		cmd_reset(s);
		return;
	}
	if (r == 0) {
		execute(s, s->cmd, s->cmd_len);
		cmd_reset(s);
		return;
	}
	if (is_append(s))
		s->cmd_limit = MB_MESSAGE_MAX + IMAP_CMD_MAX;
	if (s->cmd_len + lit > s->cmd_limit) {
		s->discard_reason = is_append(s) ? "message larger than the limit (64 MiB)"
						 : "command larger than the limit (64 KiB)";
		if (sync) {
			refuse_command(s, s->discard_reason);
		} else {
			s->discarding = true; /* LITERAL+: the bytes come anyway */
			srv_read_bytes(c, lit);
		}
		return;
	}
	if (lit == 0)
		return; /* the command goes on with the next line */
	if (sync)
		srv_printf(c, "+ go ahead\r\n");
	srv_read_bytes(c, lit);
}

static void imap_bytes(struct srv_conn *c, const char *data, size_t len, bool last)
{
	struct imap_session *s = session_of(c);

	(void)last;
	if (s->discarding)
		return;
	if (cmd_add(s, data, len) < 0)
		s->discarding = true, s->discard_reason = "out of memory";
}

static void imap_open(struct srv_conn *c)
{
	struct imap_session *s = session_of(c);
	char caps[512];

	s->conn = c;
	s->state = IMAP_NOT_AUTH;
	capabilities(s, caps, sizeof(caps));
	srv_set_timeout(c, AUTOLOGOUT_S);
	srv_printf(c, "* OK [CAPABILITY %s] %s lemongate-imapd ready\r\n", caps, srv_config()->hostname);
}

static void imap_close(struct srv_conn *c)
{
	struct imap_session *s = session_of(c);

	unselect(s);
	cmd_reset(s);
	free(s->view);
	s->view = NULL;
}

static void imap_too_long(struct srv_conn *c)
{
	srv_printf(c, "* BYE line too long (limit %d bytes)\r\n", SRV_MAX_LINE);
}

static void imap_timeout(struct srv_conn *c)
{
	srv_printf(c, "* BYE autologout: idle for more than %d minutes\r\n", AUTOLOGOUT_S / 60);
}

static const char *imap_option(const char *key, const char *value)
{
	if (strcmp(key, "submit-user") == 0)
		return urlauth_set_submit_users(value) < 0 ? "submit-user: a comma list of user names" : NULL;
	return "unknown option (imapd knows -o submit-user=NAME[,NAME...])";
}

static const char *imap_start(void)
{
	static char err[256];

	if (!srv_config()->data_dir)
		return "no mail store: give -d DIR";
	if (store_init(srv_config()->data_dir, err, sizeof(err)) < 0)
		return err;
	/* without it, deliveries by submitd still show at the next command, not while in IDLE */
	if (store_changes_fd() < 0 || srv_watch(store_changes_fd(), false, on_deliveries, NULL) < 0)
		srv_log("inotify unavailable (%s): deliveries show at the next command", strerror(errno));
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct srv_proto imap = {
		.name = "lemongate-imapd",
		.default_port = 143,
		.state_size = sizeof(struct imap_session),
		.on_option = imap_option,
		.on_start = imap_start,
		.on_open = imap_open,
		.on_line = imap_line,
		.on_bytes = imap_bytes,
		.on_line_too_long = imap_too_long,
		.on_timeout = imap_timeout,
		.on_close = imap_close,
	};

	return srv_main(argc, argv, &imap);
}
