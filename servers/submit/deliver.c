/* Local delivery and the spool. */
#include "servers/submit/deliver.h"

#include "servers/core/server.h"
#include "servers/core/words.h"
#include "servers/mail/store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define DOMAINS_MAX 16

static char domains[DOMAINS_MAX][SMTP_ADDR_MAX + 1];
static size_t domain_count;
static char spool[PATH_MAX - 64];

int deliver_set_local_domains(const char *list)
{
	int n = srv_comma_list(list, domains[0], sizeof(domains[0]), DOMAINS_MAX);

	domain_count = n < 0 ? 0 : (size_t)n;
	return n < 0 ? -1 : 0;
}

void deliver_default_local_domains(const char *hostname)
{
	const char *dot = strchr(hostname, '.');

	if (domain_count)
		return;
	snprintf(domains[domain_count++], sizeof(domains[0]), "%s", hostname);
	if (dot && strchr(dot + 1, '.'))
		snprintf(domains[domain_count++], sizeof(domains[0]), "%s", dot + 1);
}

static int make_dir(const char *path)
{
	return mkdir(path, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

int deliver_set_spool(const char *dir, char *err, size_t errlen)
{
	char sub[PATH_MAX];

	if (strlen(dir) >= sizeof(spool)) {
		snprintf(err, errlen, "spool path too long");
		return -1;
	}
	snprintf(spool, sizeof(spool), "%s", dir);
	snprintf(sub, sizeof(sub), "%s/tmp", spool);
	if (make_dir(spool) < 0 || make_dir(sub) < 0 ||
	    (snprintf(sub, sizeof(sub), "%s/queue", spool), make_dir(sub)) < 0) {
		snprintf(err, errlen, "cannot create the spool %s: %s", spool, strerror(errno));
		return -1;
	}
	return 0;
}

bool deliver_is_local_domain(const char *addr)
{
	char local[SMTP_ADDR_MAX + 1], domain[SMTP_ADDR_MAX + 1];

	if (!smtp_split_address(addr, local, sizeof(local), domain, sizeof(domain)))
		return false;
	for (size_t i = 0; i < domain_count; i++)
		if (strcasecmp(domains[i], domain) == 0)
			return true;
	return false;
}

bool deliver_local_user(const char *addr, char *user, size_t size)
{
	char local[SMTP_ADDR_MAX + 1], domain[SMTP_ADDR_MAX + 1];

	if (!deliver_is_local_domain(addr) ||
	    !smtp_split_address(addr, local, sizeof(local), domain, sizeof(domain)) ||
	    strlen(local) >= size || !srv_user_exists(local))
		return false;
	strcpy(user, local);
	return true;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void notify_text(unsigned notify, char *out, size_t size)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = { { NOTIFY_NEVER, "NEVER" }, { NOTIFY_SUCCESS, "SUCCESS" },
		      { NOTIFY_FAILURE, "FAILURE" }, { NOTIFY_DELAY, "DELAY" } };
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (notify & names[i].bit)
			o += (size_t)snprintf(out + o, size - o, "%s%s", o ? "," : "", names[i].name);
}

static int spool_message(const char *id, const struct smtp_mail *m, const struct smtp_rcpt *rcpts,
			 size_t count, const char *received, const char *data, size_t len)
{
	char tmp[PATH_MAX], final[PATH_MAX], dir[PATH_MAX], head[1024];
	int fd, n, rc = -1;

	snprintf(tmp, sizeof(tmp), "%s/tmp/%s", spool, id);
	snprintf(final, sizeof(final), "%s/queue/%s", spool, id);
	snprintf(dir, sizeof(dir), "%s/queue", spool);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
		return -1;
	n = snprintf(head, sizeof(head), "lemongate-spool 1\nmail-from <%s>%s%s%s%s%s\n", m->from,
		     m->ret ? " RET=" : "", m->ret == RET_FULL ? "FULL" : m->ret == RET_HDRS ? "HDRS" : "",
		     m->envid[0] ? " ENVID=" : "", m->envid,
		     m->body == BODY_8BITMIME ? " BODY=8BITMIME" : m->body == BODY_BINARYMIME ? " BODY=BINARYMIME" : "");
	if (write_all(fd, head, (size_t)n) < 0)
		goto out;
	for (size_t i = 0; i < count; i++) {
		if (deliver_is_local_domain(rcpts[i].to))
			continue;
		char notify[64];

		notify_text(rcpts[i].notify, notify, sizeof(notify));
		n = snprintf(head, sizeof(head), "rcpt <%s>%s%s%s%s\n", rcpts[i].to,
			     notify[0] ? " NOTIFY=" : "", notify, rcpts[i].orcpt[0] ? " ORCPT=" : "",
			     rcpts[i].orcpt);
		if (write_all(fd, head, (size_t)n) < 0)
			goto out;
	}
	if (write_all(fd, "\n", 1) < 0 || write_all(fd, received, strlen(received)) < 0 ||
	    write_all(fd, data, len) < 0 || fsync(fd) < 0)
		goto out;
	rc = 0;
out:
	if (close(fd) < 0)
		rc = -1;
	if (rc == 0 && rename(tmp, final) == 0) {
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		rc = dfd >= 0 && fsync(dfd) == 0 ? 0 : -1;
		if (dfd >= 0)
			close(dfd);
		return rc;
	}
	unlink(tmp);
	return -1;
}

int deliver_message(const char *id, const struct smtp_mail *m, const struct smtp_rcpt *rcpts,
		    size_t count, const char *received, const char *data, size_t len)
{
	size_t rl = strlen(received), remote = 0;
	char user[SMTP_ADDR_MAX + 1], rp[SMTP_ADDR_MAX + 32];
	int rpl = snprintf(rp, sizeof(rp), "Return-Path: <%s>\r\n", m->from);
	char *full = malloc((size_t)rpl + rl + len);

	if (!full)
		return -1;
	/* final delivery adds Return-Path (RFC 5321 4.4) in front of the trace */
	memcpy(full, rp, (size_t)rpl);
	memcpy(full + rpl, received, rl);
	memcpy(full + rpl + rl, data, len);
	for (size_t i = 0; i < count; i++) {
		if (!deliver_is_local_domain(rcpts[i].to)) {
			remote++;
			continue;
		}
		bool dup = false;

		for (size_t j = 0; j < i; j++)
			dup |= strcasecmp(rcpts[j].to, rcpts[i].to) == 0;
		if (dup)
			continue;
		if (!deliver_local_user(rcpts[i].to, user, sizeof(user)) ||
		    store_deliver(user, full, (size_t)rpl + rl + len) < 0) {
			int saved = errno ? errno : ENOENT;

			srv_log("%s: delivery to <%s> failed: %s", id, rcpts[i].to, strerror(saved));
			free(full);
			errno = saved;
			return -1;
		}
		srv_log("%s: delivered to <%s> (INBOX of %s)", id, rcpts[i].to, user);
	}
	free(full);
	if (remote) {
		if (spool_message(id, m, rcpts, count, received, data, len) < 0) {
			srv_log("%s: spool write failed: %s", id, strerror(errno));
			return -1;
		}
		srv_log("%s: queued for %zu remote recipient(s) in %s/queue", id, remote, spool);
	}
	return 0;
}
