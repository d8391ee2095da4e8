#define _GNU_SOURCE /* renameat2 is not used; O_DIRECTORY, dirfd */
#include "servers/mail/store.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "servers/imap/parse.h"

#define INDEX_NAME   "lemongate.index"
#define INDEX_MAGIC  "lemongate-index 1"
#define EXPUNGED_KEEP 100000 /* QRESYNC memory; older expunges are reported as a range */

struct listener {
	mbox_listener cb;
	void *arg;
};

struct mbox {
	char *user, *name, *dir;
	int refs;
	int watch; /* inotify watch descriptor on new/, -1 if none */
	bool delivered;
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq;
	struct mb_msg *msgs;
	size_t count, cap;
	struct mb_expunged *exp;
	size_t exp_count, exp_cap;
	uint64_t exp_complete_after; /* every expunge with a greater MODSEQ is in exp */
	char *keywords[MB_KEYWORDS_MAX];
	size_t keyword_count;
	struct listener *ls;
	size_t ls_count, ls_cap;
	bool dirty;
	struct mbox *next;
};

static char root[PATH_MAX];
static struct mbox *open_boxes;
/* One inotify instance watches every open mailbox's new/: an instance per mailbox would
 * stop at fs.inotify.max_user_instances (128 by default) long before the sessions do. */
static int changes_fd = -1;
static unsigned unique_counter;

static int fail_errno(int e)
{
	errno = e;
	return -1;
}

/* Paths that would not fit come out empty, so the call that uses them fails cleanly. */
static int __attribute__((format(printf, 2, 3))) pathf(char out[PATH_MAX], const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, PATH_MAX, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= PATH_MAX) {
		out[0] = '\0';
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int store_init(const char *dir, char *err, size_t errlen)
{
	struct stat st;

	if (strlen(dir) >= sizeof(root) - 128) {
		snprintf(err, errlen, "%s: path too long", dir);
		return -1;
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: not a directory", dir);
		return -1;
	}
	snprintf(root, sizeof(root), "%s", dir);
	return 0;
}

static bool user_valid(const char *user)
{
	size_t n = strlen(user);

	if (n == 0 || n > 64 || user[0] == '.')
		return false;
	for (; *user; user++)
		if (!isalnum((unsigned char)*user) && !strchr("._-@", *user))
			return false;
	return true;
}

static void encode_name(const char *name, char *out, size_t size)
{
	size_t o = 0;

	for (; *name && o + 4 < size; name++) {
		unsigned char c = (unsigned char)*name;

		if (isalnum(c) || strchr("&+,_-", c))
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, size - o, "%%%02X", c);
	}
	out[o] = '\0';
}

static int decode_name(const char *enc, char *out, size_t size)
{
	size_t o = 0;

	for (; *enc; enc++) {
		if (o + 1 >= size)
			return -1;
		if (*enc == '%') {
			unsigned v;

			if (!isxdigit((unsigned char)enc[1]) || !isxdigit((unsigned char)enc[2]) ||
			    sscanf(enc + 1, "%2x", &v) != 1)
				return -1;
			out[o++] = (char)v;
			enc += 2;
		} else {
			out[o++] = *enc;
		}
	}
	out[o] = '\0';
	return 0;
}

static int user_path(const char *user, const char *tail, char *out, size_t size)
{
	if (!user_valid(user) || !root[0])
		return fail_errno(EINVAL);
	if ((size_t)snprintf(out, size, "%s/%s%s", root, user, tail) >= size)
		return fail_errno(ENAMETOOLONG);
	return 0;
}

static int mailbox_path(const char *user, const char *name, char *out, size_t size)
{
	char enc[MB_NAME_MAX * 3 + 1];
	char tail[sizeof(enc) + 16];

	encode_name(name, enc, sizeof(enc));
	snprintf(tail, sizeof(tail), "/mailboxes/%s", enc);
	return user_path(user, tail, out, size);
}

static int fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

static int mkdir_p1(const char *path)
{
	return mkdir(path, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

bool store_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n >= MB_NAME_MAX || name[0] == '/' || name[n - 1] == '/' || strstr(name, "//"))
		return false;
	if (strpbrk(name, "*%"))
		return false;
	return imap_mutf7_valid(name, n);
}

void store_name_canonical(char *name)
{
	if (strncasecmp(name, "INBOX", 5) == 0 && (name[5] == '\0' || name[5] == '/'))
		memcpy(name, "INBOX", 5);
}

bool store_exists(const char *user, const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	return mailbox_path(user, name, path, sizeof(path)) == 0 && stat(path, &st) == 0 &&
	       S_ISDIR(st.st_mode);
}

/* UIDVALIDITY must change whenever a name is reused: a per-user counter, at least the time. */
static uint32_t next_uidvalidity(const char *user)
{
	char path[PATH_MAX];
	unsigned long last = 0, now = (unsigned long)time(NULL), next;
	FILE *f;

	if (user_path(user, "/uidvalidity", path, sizeof(path)) < 0)
		return (uint32_t)now;
	f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%lu", &last) != 1)
			last = 0;
		fclose(f);
	}
	next = now > last ? now : last + 1;
	if (next > 0xffffffffu || next == 0)
		next = 1;
	f = fopen(path, "w");
	if (f) {
		fprintf(f, "%lu\n", next);
		fclose(f);
	}
	return (uint32_t)next;
}

static int write_index(const char *dir, uint32_t uidvalidity, uint32_t uidnext, uint64_t hms,
		       const struct mb_msg *msgs, size_t count, const struct mb_expunged *exp,
		       size_t exp_count, uint64_t exp_complete_after, char *const *keywords,
		       size_t keyword_count)
{
	char tmp[PATH_MAX], final[PATH_MAX];
	FILE *f;
	int fd, bad;

	pathf(tmp, "%s/%s.tmp", dir, INDEX_NAME);
	pathf(final, "%s/%s", dir, INDEX_NAME);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	fprintf(f, "%s\nuidvalidity %u\nuidnext %u\nhighestmodseq %llu\nexpungedafter %llu\n",
		INDEX_MAGIC, uidvalidity, uidnext, (unsigned long long)hms,
		(unsigned long long)exp_complete_after);
	for (size_t i = 0; i < keyword_count; i++)
		fprintf(f, "keyword %s\n", keywords[i]);
	for (size_t i = 0; i < count; i++) {
		const struct mb_msg *m = &msgs[i];

		fprintf(f, "m %u %llu %lld %d %llu %x %llx %s\n", m->uid,
			(unsigned long long)m->modseq, (long long)m->internaldate, m->zone_minutes,
			(unsigned long long)m->size, m->flags, (unsigned long long)m->keywords, m->file);
	}
	for (size_t i = 0; i < exp_count; i++)
		fprintf(f, "x %u %llu\n", exp[i].uid, (unsigned long long)exp[i].modseq);
	bad = fflush(f) != 0 || ferror(f) || fsync(fd) != 0;
	if (fclose(f) != 0 || bad || rename(tmp, final) != 0) {
		unlink(tmp);
		errno = EIO;
		return -1;
	}
	return fsync_dir(dir);
}

static int make_mailbox(const char *user, const char *name)
{
	char path[PATH_MAX], sub[PATH_MAX];

	if (mailbox_path(user, name, path, sizeof(path)) < 0)
		return -1;
	if (mkdir(path, 0700) < 0)
		return -1;
	for (int i = 0; i < 3; i++) {
		pathf(sub, "%s/%s", path, i == 0 ? "cur" : i == 1 ? "new" : "tmp");
		if (mkdir_p1(sub) < 0)
			return -1;
	}
	if (write_index(path, next_uidvalidity(user), 1, 1, NULL, 0, NULL, 0, 0, NULL, 0) < 0)
		return -1;
	user_path(user, "/mailboxes", sub, sizeof(sub));
	return fsync_dir(sub);
}

int store_user_init(const char *user)
{
	char path[PATH_MAX];

	if (user_path(user, "", path, sizeof(path)) < 0 || mkdir_p1(path) < 0)
		return -1;
	if (user_path(user, "/mailboxes", path, sizeof(path)) < 0 || mkdir_p1(path) < 0)
		return -1;
	if (store_exists(user, "INBOX"))
		return 0;
	return make_mailbox(user, "INBOX") < 0 && errno != EEXIST ? -1 : 0;
}

/* Superiors of a new name are created too (RFC 3501 6.3.3, 6.3.5). */
static int make_superiors(const char *user, const char *name)
{
	char parent[MB_NAME_MAX];

	snprintf(parent, sizeof(parent), "%s", name);
	for (char *slash = strchr(parent, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		if (!store_exists(user, parent) && make_mailbox(user, parent) < 0 && errno != EEXIST)
			return -1;
		*slash = '/';
	}
	return 0;
}

int store_create(const char *user, const char *name)
{
	if (!store_name_valid(name))
		return fail_errno(EINVAL);
	if (store_exists(user, name))
		return fail_errno(EEXIST);
	if (make_superiors(user, name) < 0)
		return -1;
	return make_mailbox(user, name);
}

static bool is_open(const char *user, const char *name)
{
	for (struct mbox *mb = open_boxes; mb; mb = mb->next)
		if (strcmp(mb->user, user) == 0 && strcmp(mb->name, name) == 0)
			return true;
	return false;
}

struct name_list {
	char **names;
	size_t count, cap;
};

static void collect_name(const char *name, void *arg)
{
	struct name_list *l = arg;

	if (l->count == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		char **more = realloc(l->names, cap * sizeof(*more));

		if (!more)
			return;
		l->names = more;
		l->cap = cap;
	}
	if ((l->names[l->count] = strdup(name)))
		l->count++;
}

static void free_names(struct name_list *l)
{
	for (size_t i = 0; i < l->count; i++)
		free(l->names[i]);
	free(l->names);
}

static bool is_inferior(const char *name, const char *of)
{
	size_t n = strlen(of);

	return strncmp(name, of, n) == 0 && name[n] == '/';
}

static int remove_tree(const char *path)
{
	const char *subs[] = { "cur", "new", "tmp" };
	char p[PATH_MAX];

	for (size_t i = 0; i < 3; i++) {
		DIR *d;
		struct dirent *e;

		pathf(p, "%s/%s", path, subs[i]);
		d = opendir(p);
		if (!d)
			continue;
		while ((e = readdir(d))) {
			char f[PATH_MAX];

			if (e->d_name[0] == '.')
				continue;
			pathf(f, "%s/%s", p, e->d_name);
			unlink(f);
		}
		closedir(d);
		rmdir(p);
	}
	pathf(p, "%s/%s", path, INDEX_NAME);
	unlink(p);
	pathf(p, "%s/%s.tmp", path, INDEX_NAME);
	unlink(p);
	return rmdir(path);
}

int store_delete(const char *user, const char *name)
{
	char path[PATH_MAX];
	struct name_list all = { 0 };
	bool children = false;

	if (strcmp(name, "INBOX") == 0 || !store_name_valid(name))
		return fail_errno(EINVAL);
	if (!store_exists(user, name))
		return fail_errno(ENOENT);
	if (is_open(user, name))
		return fail_errno(EBUSY);
	store_list(user, collect_name, &all);
	for (size_t i = 0; i < all.count; i++)
		children |= is_inferior(all.names[i], name);
	free_names(&all);
	if (children)
		return fail_errno(ENOTEMPTY);
	if (mailbox_path(user, name, path, sizeof(path)) < 0 || remove_tree(path) < 0)
		return -1;
	store_subscribe(user, name, false);
	return 0;
}

static int rename_one(const char *user, const char *from, const char *to)
{
	char a[PATH_MAX], b[PATH_MAX];

	if (mailbox_path(user, from, a, sizeof(a)) < 0 || mailbox_path(user, to, b, sizeof(b)) < 0)
		return -1;
	return rename(a, b);
}

int store_rename(const char *user, const char *from, const char *to)
{
	struct name_list all = { 0 };
	char path[PATH_MAX];
	int rc = 0;

	if (!store_name_valid(from) || !store_name_valid(to) || strcmp(to, "INBOX") == 0 ||
	    is_inferior(to, from))
		return fail_errno(EINVAL);
	if (!store_exists(user, from))
		return fail_errno(ENOENT);
	if (store_exists(user, to))
		return fail_errno(EEXIST);
	store_list(user, collect_name, &all);
	for (size_t i = 0; i < all.count; i++)
		if ((strcmp(all.names[i], from) == 0 ||
		     (strcmp(from, "INBOX") != 0 && is_inferior(all.names[i], from))) &&
		    is_open(user, all.names[i])) {
			free_names(&all);
			errno = EBUSY;
			return -1;
		}
	if (make_superiors(user, to) < 0) {
		free_names(&all);
		return -1;
	}
	rc = rename_one(user, from, to);
	/* INBOX's messages move and INBOX stays, empty (RFC 3501 6.3.5); its inferiors stay too */
	if (rc == 0 && strcmp(from, "INBOX") == 0)
		rc = make_mailbox(user, "INBOX");
	else
		for (size_t i = 0; rc == 0 && i < all.count; i++)
			if (is_inferior(all.names[i], from)) {
				char target[MB_NAME_MAX * 2];

				snprintf(target, sizeof(target), "%s%s", to,
					 all.names[i] + strlen(from));
				if (strlen(target) >= MB_NAME_MAX) {
					errno = ENAMETOOLONG;
					rc = -1;
				} else {
					rc = rename_one(user, all.names[i], target);
				}
			}
	free_names(&all);
	if (rc == 0 && user_path(user, "/mailboxes", path, sizeof(path)) == 0)
		fsync_dir(path);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int store_list(const char *user, void (*cb)(const char *name, void *arg), void *arg)
{
	char path[PATH_MAX], name[MB_NAME_MAX];
	struct name_list l = { 0 };
	DIR *d;
	struct dirent *e;

	if (user_path(user, "/mailboxes", path, sizeof(path)) < 0 || !(d = opendir(path)))
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && decode_name(e->d_name, name, sizeof(name)) == 0 &&
		    store_name_valid(name))
			collect_name(name, &l);
	closedir(d);
	if (l.count)
		qsort(l.names, l.count, sizeof(*l.names), cmp_str);
	for (size_t i = 0; i < l.count; i++)
		cb(l.names[i], arg);
	free_names(&l);
	return 0;
}

int store_subscribe(const char *user, const char *name, bool on)
{
	char path[PATH_MAX], tmp[PATH_MAX], line[MB_NAME_MAX + 2];
	FILE *in, *out;
	bool present = false;
	int rc = 0;

	if (user_path(user, "/subscriptions", path, sizeof(path)) < 0)
		return -1;
	pathf(tmp, "%s.tmp", path);
	if (!(out = fopen(tmp, "w")))
		return -1;
	if ((in = fopen(path, "r"))) {
		while (fgets(line, sizeof(line), in)) {
			line[strcspn(line, "\n")] = '\0';
			if (strcmp(line, name) == 0) {
				present = true;
				if (!on)
					continue;
			}
			fprintf(out, "%s\n", line);
		}
		fclose(in);
	}
	if (on && !present)
		fprintf(out, "%s\n", name);
	if (fflush(out) != 0 || fsync(fileno(out)) != 0)
		rc = -1;
	if (fclose(out) != 0 || rc < 0 || rename(tmp, path) < 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

bool store_subscribed(const char *user, const char *name)
{
	char path[PATH_MAX], line[MB_NAME_MAX + 2];
	FILE *in;
	bool found = false;

	if (user_path(user, "/subscriptions", path, sizeof(path)) < 0 || !(in = fopen(path, "r")))
		return false;
	while (!found && fgets(line, sizeof(line), in)) {
		line[strcspn(line, "\n")] = '\0';
		found = strcmp(line, name) == 0;
	}
	fclose(in);
	return found;
}

static void unique_name(char *out, size_t size)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(out, size, "%lld.M%ldP%dQ%u.lemongate", (long long)ts.tv_sec, ts.tv_nsec / 1000,
		 (int)getpid(), ++unique_counter);
}

/* Write DATA to DIR/tmp/NAME, fsync, and move it to DIR/SUB/NAME, fsyncing that directory. */
static int write_durably(const char *dir, const char *sub, const char *name, const void *data,
			 size_t len)
{
	char tmp[PATH_MAX], final[PATH_MAX], subdir[PATH_MAX];
	const char *p = data;
	int fd;

	pathf(tmp, "%s/tmp/%s", dir, name);
	pathf(final, "%s/%s/%s", dir, sub, name);
	pathf(subdir, "%s/%s", dir, sub);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) < 0)
		goto fail;
	close(fd);
	fd = -1;
	if (rename(tmp, final) < 0 || fsync_dir(subdir) < 0)
		goto fail;
	return 0;
fail:
	{
		int saved = errno;

		if (fd >= 0)
			close(fd);
		unlink(tmp);
		errno = saved;
	}
	return -1;
}

static bool user_file_name_ok(const char *name)
{
	if (!*name || strlen(name) > 64)
		return false;
	for (const char *c = name; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || *c == '.' || *c == '-'))
			return false;
	return true;
}

char *store_user_file_read(const char *user, const char *name, size_t *len)
{
	char path[PATH_MAX];
	char *data = NULL;
	FILE *f;
	long size;

	if (!user_file_name_ok(name)) {
		fail_errno(EINVAL);
		return NULL;
	}
	if (user_path(user, "/", path, sizeof(path)) < 0 || strlen(path) + strlen(name) >= sizeof(path)) {
		fail_errno(ENAMETOOLONG);
		return NULL;
	}
	strcat(path, name);
	if (!(f = fopen(path, "re")))
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && size <= (1 << 20) &&
	    fseek(f, 0, SEEK_SET) == 0 && (data = malloc((size_t)size + 1)) &&
	    fread(data, 1, (size_t)size, f) == (size_t)size) {
		data[size] = '\0';
		*len = (size_t)size;
	} else {
		free(data);
		data = NULL;
		errno = EIO;
	}
	fclose(f);
	return data;
}

int store_user_file_write(const char *user, const char *name, const void *data, size_t len)
{
	char dir[PATH_MAX], tmp[PATH_MAX], final[PATH_MAX];
	int fd;
	bool bad;

	if (!user_file_name_ok(name))
		return fail_errno(EINVAL);
	if (store_user_init(user) < 0 || user_path(user, "", dir, sizeof(dir)) < 0)
		return -1;
	pathf(tmp, "%s/%s.tmp", dir, name);
	pathf(final, "%s/%s", dir, name);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
		return -1;
	bad = write(fd, data, len) != (ssize_t)len || fsync(fd) < 0;
	if (close(fd) < 0 || bad || rename(tmp, final) < 0 || fsync_dir(dir) < 0) {
		int saved = errno ? errno : EIO;

		unlink(tmp);
		return fail_errno(saved);
	}
	return 0;
}

int store_deliver(const char *user, const void *data, size_t len)
{
	char dir[PATH_MAX], name[128];

	if (len > MB_MESSAGE_MAX)
		return fail_errno(EFBIG);
	if (store_user_init(user) < 0 || mailbox_path(user, "INBOX", dir, sizeof(dir)) < 0)
		return -1;
	unique_name(name, sizeof(name));
	return write_durably(dir, "new", name, data, len);
}

/* ---- open mailboxes ---- */

static int msgs_reserve(struct mbox *mb, size_t more)
{
	if (mb->count + more <= mb->cap)
		return 0;
	size_t cap = mb->cap ? mb->cap : 64;

	while (cap < mb->count + more)
		cap *= 2;
	struct mb_msg *m = realloc(mb->msgs, cap * sizeof(*m));

	if (!m)
		return -1;
	mb->msgs = m;
	mb->cap = cap;
	return 0;
}

static void note_expunged(struct mbox *mb, uint32_t uid, uint64_t modseq)
{
	if (mb->exp_count == mb->exp_cap) {
		if (mb->exp_cap >= EXPUNGED_KEEP) {
			size_t drop = mb->exp_cap / 2;

			mb->exp_complete_after = mb->exp[drop - 1].modseq;
			memmove(mb->exp, mb->exp + drop, (mb->exp_count - drop) * sizeof(*mb->exp));
			mb->exp_count -= drop;
		} else {
			size_t cap = mb->exp_cap ? mb->exp_cap * 2 : 64;
			struct mb_expunged *e = realloc(mb->exp, cap * sizeof(*e));

			if (!e) {
				mb->exp_complete_after = modseq;
				return;
			}
			mb->exp = e;
			mb->exp_cap = cap;
		}
	}
	mb->exp[mb->exp_count++] = (struct mb_expunged){ .uid = uid, .modseq = modseq };
}

static uint32_t maildir_info_flags(const char *file)
{
	const char *info = strstr(file, ":2,");
	uint32_t f = 0;

	if (!info)
		return 0;
	for (info += 3; *info; info++)
		switch (*info) {
		case 'S': f |= MB_SEEN; break;
		case 'R': f |= MB_ANSWERED; break;
		case 'F': f |= MB_FLAGGED; break;
		case 'T': f |= MB_DELETED; break;
		case 'D': f |= MB_DRAFT; break;
		}
	return f;
}

/* A file found in cur/ that the index does not know: a delivery or an APPEND cut short
 * after its rename. */
static int adopt(struct mbox *mb, const char *file)
{
	char path[PATH_MAX];
	struct stat st;
	struct mb_msg *m;

	pathf(path, "%s/cur/%s", mb->dir, file);
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || msgs_reserve(mb, 1) < 0)
		return -1;
	if (mb->uidnext == 0xffffffffu)
		return fail_errno(EOVERFLOW);
	m = &mb->msgs[mb->count];
	*m = (struct mb_msg){
		.uid = mb->uidnext++,
		.flags = MB_RECENT | maildir_info_flags(file),
		.modseq = ++mb->highestmodseq,
		.internaldate = st.st_mtime,
		.size = (uint64_t)st.st_size,
		.file = strdup(file),
	};
	if (!m->file)
		return -1;
	mb->count++;
	mb->dirty = true;
	return 0;
}

static int keyword_add(struct mbox *mb, const char *name)
{
	if (mb->keyword_count >= MB_KEYWORDS_MAX)
		return -1;
	if (!(mb->keywords[mb->keyword_count] = strdup(name)))
		return -1;
	return (int)mb->keyword_count++;
}

static int read_index(struct mbox *mb)
{
	char path[PATH_MAX], line[1024];
	FILE *f;
	int lineno = 0;

	pathf(path, "%s/%s", mb->dir, INDEX_NAME);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long a, b, c, d;
		long long t;
		int zone;
		unsigned uid, flags;
		char file[256], word[256];

		lineno++;
		line[strcspn(line, "\n")] = '\0';
		if (lineno == 1) {
			if (strcmp(line, INDEX_MAGIC) != 0)
				goto bad;
		} else if (sscanf(line, "uidvalidity %llu", &a) == 1 && a && a <= 0xffffffffu) {
			mb->uidvalidity = (uint32_t)a;
		} else if (sscanf(line, "uidnext %llu", &a) == 1 && a && a <= 0xffffffffu) {
			mb->uidnext = (uint32_t)a;
		} else if (sscanf(line, "highestmodseq %llu", &a) == 1) {
			mb->highestmodseq = a;
		} else if (sscanf(line, "expungedafter %llu", &a) == 1) {
			mb->exp_complete_after = a;
		} else if (sscanf(line, "keyword %255s", word) == 1) {
			if (keyword_add(mb, word) < 0)
				goto bad;
		} else if (sscanf(line, "m %u %llu %lld %d %llu %x %llx %255s", &uid, &b, &t, &zone,
				  &c, &flags, &d, file) == 8) {
			if (msgs_reserve(mb, 1) < 0 || uid == 0 || uid >= mb->uidnext ||
			    (mb->count && mb->msgs[mb->count - 1].uid >= uid) || strchr(file, '/'))
				goto bad;
			mb->msgs[mb->count] = (struct mb_msg){
				.uid = uid, .modseq = b, .internaldate = t, .zone_minutes = zone,
				.size = c, .flags = flags, .keywords = d, .file = strdup(file),
			};
			if (!mb->msgs[mb->count].file)
				goto bad;
			mb->count++;
		} else if (sscanf(line, "x %u %llu", &uid, &b) == 2) {
			note_expunged(mb, uid, b);
		} else {
			goto bad;
		}
	}
	fclose(f);
	if (!mb->uidvalidity || !mb->uidnext)
		return -1;
	return 0;
bad:
	fclose(f);
	return -1;
}

static void free_msgs(struct mbox *mb)
{
	for (size_t i = 0; i < mb->count; i++)
		free(mb->msgs[i].file);
	mb->count = 0;
	for (size_t i = 0; i < mb->keyword_count; i++)
		free(mb->keywords[i]);
	mb->keyword_count = 0;
	mb->exp_count = 0;
	mb->exp_complete_after = 0;
}

static int cmp_file(const void *a, const void *b)
{
	return strcmp(((const struct mb_msg *)a)->file, ((const struct mb_msg *)b)->file);
}

static int cmp_uid(const void *a, const void *b)
{
	uint32_t x = ((const struct mb_msg *)a)->uid, y = ((const struct mb_msg *)b)->uid;

	return x < y ? -1 : x > y;
}

/* Reconcile the index with cur/: drop entries whose file is gone, adopt files it lacks. */
/* The files of DIR/SUB (no dot files), sorted by name. */
static int list_sorted(const char *dir, const char *sub, struct name_list *files)
{
	char path[PATH_MAX];
	DIR *d;
	struct dirent *e;

	pathf(path, "%s/%s", dir, sub);
	if (!(d = opendir(path)))
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			collect_name(e->d_name, files);
	closedir(d);
	if (files->count)
		qsort(files->names, files->count, sizeof(*files->names), cmp_str);
	return 0;
}

static int reconcile(struct mbox *mb)
{
	struct name_list files = { 0 };
	size_t i = 0, j = 0, kept = 0, known;

	if (list_sorted(mb->dir, "cur", &files) < 0)
		return -1;
	if (mb->count)
		qsort(mb->msgs, mb->count, sizeof(*mb->msgs), cmp_file);
	known = mb->count;
	struct name_list orphans = { 0 };

	while (i < known || j < files.count) {
		int c = i >= known ? 1 : j >= files.count ? -1 : strcmp(mb->msgs[i].file, files.names[j]);

		if (c == 0) {
			mb->msgs[kept++] = mb->msgs[i++];
			j++;
		} else if (c < 0) {
			note_expunged(mb, mb->msgs[i].uid, ++mb->highestmodseq);
			free(mb->msgs[i++].file);
			mb->dirty = true;
		} else {
			collect_name(files.names[j++], &orphans);
		}
	}
	mb->count = kept;
	if (mb->count)
		qsort(mb->msgs, mb->count, sizeof(*mb->msgs), cmp_uid);
	for (size_t k = 0; k < orphans.count; k++)
		adopt(mb, orphans.names[k]);
	free_names(&orphans);
	free_names(&files);
	return 0;
}

int mbox_rescan(struct mbox *mb)
{
	char path[PATH_MAX], from[PATH_MAX], to[PATH_MAX];
	struct name_list files = { 0 };

	if (list_sorted(mb->dir, "new", &files) < 0)
		return -1;
	for (size_t i = 0; i < files.count; i++) {
		pathf(from, "%s/new/%s", mb->dir, files.names[i]);
		pathf(to, "%s/cur/%s", mb->dir, files.names[i]);
		if (rename(from, to) == 0)
			adopt(mb, files.names[i]);
	}
	if (files.count) {
		pathf(path, "%s/cur", mb->dir);
		fsync_dir(path);
	}
	free_names(&files);
	return mbox_commit(mb);
}

static void mbox_free(struct mbox *mb)
{
	if (mb->watch >= 0)
		inotify_rm_watch(changes_fd, mb->watch);
	free_msgs(mb);
	free(mb->msgs);
	free(mb->exp);
	free(mb->ls);
	free(mb->user);
	free(mb->name);
	free(mb->dir);
	free(mb);
}

struct mbox *mbox_open(const char *user, const char *name)
{
	char path[PATH_MAX];
	struct mbox *mb;

	for (mb = open_boxes; mb; mb = mb->next)
		if (strcmp(mb->user, user) == 0 && strcmp(mb->name, name) == 0) {
			mb->refs++;
			return mb;
		}
	if (!store_exists(user, name) || mailbox_path(user, name, path, sizeof(path)) < 0) {
		errno = ENOENT;
		return NULL;
	}
	mb = calloc(1, sizeof(*mb));
	if (!mb)
		return NULL;
	mb->user = strdup(user);
	mb->name = strdup(name);
	mb->dir = strdup(path);
	mb->refs = 1;
	mb->watch = -1;
	if (!mb->user || !mb->name || !mb->dir)
		goto fail;
	if (read_index(mb) < 0) {
		/* no index or a damaged one: rebuild from the files, under a new UIDVALIDITY */
		free_msgs(mb);
		mb->uidvalidity = next_uidvalidity(user);
		mb->uidnext = 1;
		mb->highestmodseq = 1;
		mb->dirty = true;
	}
	if (reconcile(mb) < 0)
		goto fail;
	pathf(path, "%s/new", mb->dir);
	if (store_changes_fd() >= 0)
		mb->watch = inotify_add_watch(changes_fd, path, IN_MOVED_TO | IN_CLOSE_WRITE);
	if (mbox_rescan(mb) < 0)
		goto fail;
	mb->next = open_boxes;
	open_boxes = mb;
	return mb;
fail:
	mbox_free(mb);
	errno = EIO;
	return NULL;
}

int store_changes_fd(void)
{
	if (changes_fd < 0)
		changes_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	return changes_fd;
}

void store_changes(void)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool overflow = false;
	ssize_t n;
	size_t count = 0, i = 0;
	struct mbox **boxes;

	while ((n = read(changes_fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p + sizeof(struct inotify_event) <= buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;

			if (ev->mask & IN_Q_OVERFLOW)
				overflow = true; /* events were lost: look at every mailbox */
			for (struct mbox *mb = open_boxes; mb && !overflow; mb = mb->next)
				if (mb->watch == ev->wd)
					mb->delivered = true;
			p += sizeof(*ev) + ev->len;
		}
	}
	for (struct mbox *mb = open_boxes; mb; mb = mb->next)
		count += mb->delivered || overflow;
	if (!count || !(boxes = calloc(count, sizeof(*boxes))))
		return;
	/* held while listeners run: a session that ends in a listener may close its mailbox */
	for (struct mbox *mb = open_boxes; mb; mb = mb->next)
		if (mb->delivered || overflow) {
			mb->delivered = false;
			mb->refs++;
			boxes[i++] = mb;
		}
	for (i = 0; i < count; i++) {
		mbox_rescan(boxes[i]);
		mbox_notify(boxes[i]);
		mbox_close(boxes[i]);
	}
	free(boxes);
}

void mbox_close(struct mbox *mb)
{
	if (!mb || --mb->refs > 0)
		return;
	mbox_commit(mb);
	for (struct mbox **p = &open_boxes; *p; p = &(*p)->next)
		if (*p == mb) {
			*p = mb->next;
			break;
		}
	mbox_free(mb);
}

size_t mbox_open_count(void)
{
	size_t n = 0;

	for (struct mbox *mb = open_boxes; mb; mb = mb->next)
		n++;
	return n;
}

void mbox_view(const struct mbox *mb, struct mbox_view *v)
{
	*v = (struct mbox_view){
		.user = mb->user, .name = mb->name, .uidvalidity = mb->uidvalidity,
		.uidnext = mb->uidnext, .highestmodseq = mb->highestmodseq, .msgs = mb->msgs,
		.count = mb->count, .expunged = mb->exp, .expunged_count = mb->exp_count,
		.expunged_complete_after = mb->exp_complete_after,
		.keywords = (const char *const *)mb->keywords, .keyword_count = mb->keyword_count,
	};
}

int mbox_listen(struct mbox *mb, mbox_listener cb, void *arg)
{
	if (mb->ls_count == mb->ls_cap) {
		size_t cap = mb->ls_cap ? mb->ls_cap * 2 : 4;
		struct listener *l = realloc(mb->ls, cap * sizeof(*l));

		if (!l)
			return -1;
		mb->ls = l;
		mb->ls_cap = cap;
	}
	mb->ls[mb->ls_count++] = (struct listener){ cb, arg };
	return 0;
}

void mbox_unlisten(struct mbox *mb, mbox_listener cb, void *arg)
{
	for (size_t i = 0; i < mb->ls_count; i++)
		if (mb->ls[i].cb == cb && mb->ls[i].arg == arg) {
			mb->ls[i] = mb->ls[--mb->ls_count];
			return;
		}
}

void mbox_notify(struct mbox *mb)
{
	size_t n = mb->ls_count;
	struct listener *copy;

	if (!n || !(copy = malloc(n * sizeof(*copy))))
		return;
	memcpy(copy, mb->ls, n * sizeof(*copy));
	mb->refs++; /* a listener may close its own reference */
	for (size_t i = 0; i < n; i++) {
		bool still = false;

		for (size_t k = 0; k < mb->ls_count; k++)
			still |= mb->ls[k].cb == copy[i].cb && mb->ls[k].arg == copy[i].arg;
		if (still)
			copy[i].cb(mb, copy[i].arg);
	}
	free(copy);
	mbox_close(mb);
}

int mbox_keyword(struct mbox *mb, const char *name, bool create)
{
	for (size_t i = 0; i < mb->keyword_count; i++)
		if (strcasecmp(mb->keywords[i], name) == 0)
			return (int)i;
	if (!create)
		return -1;
	int k = keyword_add(mb, name);

	if (k >= 0)
		mb->dirty = true;
	return k;
}

int mbox_commit(struct mbox *mb)
{
	if (!mb->dirty)
		return 0;
	if (write_index(mb->dir, mb->uidvalidity, mb->uidnext, mb->highestmodseq, mb->msgs,
			mb->count, mb->exp, mb->exp_count, mb->exp_complete_after, mb->keywords,
			mb->keyword_count) < 0)
		return -1;
	mb->dirty = false;
	return 0;
}

int mbox_append(struct mbox *mb, const void *data, size_t len, uint32_t flags, uint64_t keywords,
		int64_t internaldate, int zone_minutes, uint32_t *uid)
{
	char name[128], path[PATH_MAX];
	struct mb_msg *m;

	if (len > MB_MESSAGE_MAX)
		return fail_errno(EFBIG);
	if (mb->uidnext == 0xffffffffu)
		return fail_errno(EOVERFLOW);
	if (msgs_reserve(mb, 1) < 0)
		return -1;
	unique_name(name, sizeof(name));
	if (write_durably(mb->dir, "cur", name, data, len) < 0)
		return -1;
	m = &mb->msgs[mb->count];
	*m = (struct mb_msg){
		.uid = mb->uidnext, .flags = (flags & ~MB_RECENT) | MB_RECENT, .keywords = keywords,
		.modseq = mb->highestmodseq + 1, .internaldate = internaldate,
		.zone_minutes = zone_minutes, .size = len, .file = strdup(name),
	};
	if (!m->file)
		goto undo;
	mb->count++;
	mb->uidnext++;
	mb->highestmodseq++;
	mb->dirty = true;
	if (mbox_commit(mb) < 0) {
		mb->count--;
		mb->uidnext--;
		mb->highestmodseq--;
		free(m->file);
		goto undo;
	}
	*uid = m->uid;
	return 0;
undo:
	pathf(path, "%s/cur/%s", mb->dir, name);
	unlink(path);
	pathf(path, "%s/cur", mb->dir);
	fsync_dir(path);
	errno = EIO;
	return -1;
}

bool mbox_set_flags(struct mbox *mb, size_t index, uint32_t flags, uint64_t keywords)
{
	struct mb_msg *m = &mb->msgs[index];

	if (m->flags == flags && m->keywords == keywords)
		return false;
	m->flags = flags;
	m->keywords = keywords;
	m->modseq = ++mb->highestmodseq;
	mb->dirty = true;
	return true;
}

void mbox_clear_recent(struct mbox *mb)
{
	for (size_t i = 0; i < mb->count; i++)
		if (mb->msgs[i].flags & MB_RECENT) {
			mb->msgs[i].flags &= ~MB_RECENT;
			mb->dirty = true;
		}
}

int mbox_expunge(struct mbox *mb, bool (*only)(uint32_t uid, void *arg), void *arg,
		 uint32_t **out, size_t *out_count)
{
	char path[PATH_MAX];
	size_t kept = 0, n = 0;
	uint32_t *uids = NULL;
	int rc;

	*out = NULL;
	*out_count = 0;
	for (size_t i = 0; i < mb->count; i++)
		n += (mb->msgs[i].flags & MB_DELETED) && (!only || only(mb->msgs[i].uid, arg));
	if (n == 0)
		return 0;
	if (!(uids = malloc(n * sizeof(*uids))))
		return -1;
	n = 0;
	/* files first: a crash before the index is written leaves entries without files, which
	 * the next open drops; the other order would bring expunged messages back */
	for (size_t i = 0; i < mb->count; i++) {
		struct mb_msg *m = &mb->msgs[i];

		if ((m->flags & MB_DELETED) && (!only || only(m->uid, arg))) {
			pathf(path, "%s/cur/%s", mb->dir, m->file);
			if (unlink(path) < 0 && errno != ENOENT) {
				mb->msgs[kept++] = *m;
				continue;
			}
			uids[n++] = m->uid;
			note_expunged(mb, m->uid, ++mb->highestmodseq);
			free(m->file);
		} else {
			mb->msgs[kept++] = *m;
		}
	}
	mb->count = kept;
	mb->dirty = true;
	pathf(path, "%s/cur", mb->dir);
	fsync_dir(path);
	rc = mbox_commit(mb);
	*out = uids;
	*out_count = n;
	return rc;
}

int mbox_read(struct mbox *mb, const struct mb_msg *m, char **data, size_t *len)
{
	char path[PATH_MAX];
	struct stat st;
	char *buf;
	size_t got = 0;
	int fd;

	pathf(path, "%s/cur/%s", mb->dir, m->file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size > MB_MESSAGE_MAX ||
	    !(buf = malloc((size_t)st.st_size + 1))) {
		close(fd);
		errno = EIO;
		return -1;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			break;
		}
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	*data = buf;
	*len = got;
	return 0;
}

int mbox_copy(struct mbox *src, const struct mb_msg *m, struct mbox *dst, uint32_t *uid)
{
	uint64_t kw = 0;
	char *data;
	size_t len;
	int rc;

	for (size_t i = 0; i < src->keyword_count; i++)
		if (m->keywords & (1ull << i)) {
			int k = mbox_keyword(dst, src->keywords[i], true);

			if (k >= 0)
				kw |= 1ull << k;
		}
	if (mbox_read(src, m, &data, &len) < 0)
		return -1;
	rc = mbox_append(dst, data, len, m->flags & ~MB_RECENT, kw, m->internaldate,
			 m->zone_minutes, uid);
	free(data);
	return rc;
}

int mbox_index_of_uid(const struct mbox *mb, uint32_t uid)
{
	size_t lo = 0, hi = mb->count;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (mb->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < mb->count && mb->msgs[lo].uid == uid ? (int)lo : -1;
}
