/* The mail store shared by both servers: one Maildir per mailbox under
 * ROOT/USER/mailboxes/NAME/ (cur, new, tmp), NAME the IMAP name (modified UTF-7, '/' the
 * hierarchy delimiter) with every byte outside [A-Za-z0-9&+,_-] written as %XX, so a name
 * never escapes its directory. Each mailbox keeps lemongate.index beside its Maildir: UIDVALIDITY,
 * UIDNEXT, HIGHESTMODSEQ, per message UID, MODSEQ, INTERNALDATE, size, file and flags, and the
 * UIDs expunged since (for QRESYNC).
 *
 * Durability: a message is written to tmp/, fsynced, renamed into cur/ (or new/, for a
 * delivery by another process) and the directory fsynced before anyone is told it exists;
 * the index is replaced the same way (write, fsync, rename). After a crash a message file in
 * cur/ or new/ missing from the index is adopted with a new UID, and an index entry without
 * its file is dropped as expunged: a half-written message is never visible.
 *
 * Only lemongate-imapd opens mailboxes (one process, one thread); other processes only
 * deliver into new/, which the open mailbox watches with inotify. */
#ifndef LG_MAIL_STORE_H
#define LG_MAIL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MB_SEEN     0x01u
#define MB_ANSWERED 0x02u
#define MB_FLAGGED  0x04u
#define MB_DELETED  0x08u
#define MB_DRAFT    0x10u
#define MB_RECENT   0x20u /* session-independent here: set on arrival, cleared by the first SELECT */
#define MB_KEYWORDS_MAX 64
#define MB_NAME_MAX 512
#define MB_MESSAGE_MAX (64u << 20)

struct mb_msg {
	uint32_t uid;
	uint32_t flags;
	uint64_t keywords; /* bit i: mailbox keyword i */
	uint64_t modseq;
	int64_t internaldate; /* seconds since the epoch */
	int zone_minutes;     /* the INTERNALDATE's zone as given */
	uint64_t size;
	char *file;           /* name in cur/ */
};

struct mb_expunged {
	uint32_t uid;
	uint64_t modseq;
};

struct mbox;
typedef void (*mbox_listener)(struct mbox *mb, void *arg);

/* The mailbox as this process sees it; counts and arrays are valid until the next call that
 * changes the mailbox. */
struct mbox_view {
	const char *user, *name;
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq;
	const struct mb_msg *msgs;
	size_t count;
	const struct mb_expunged *expunged; /* ascending MODSEQ */
	size_t expunged_count;
	uint64_t expunged_complete_after;   /* older expunges were forgotten (or never known) */
	const char *const *keywords;
	size_t keyword_count;
};

/* ROOT must exist; 0 or -1 with a message. */
int store_init(const char *root, char *err, size_t errlen);
/* The user's directory and INBOX, created if missing. */
int store_user_init(const char *user);

bool store_name_valid(const char *name); /* modified UTF-7, no empty level, not too long */
/* INBOX in any case is INBOX; NAME is rewritten in place. */
void store_name_canonical(char *name);
bool store_exists(const char *user, const char *name);
/* 0, or -1 with errno: EEXIST, ENOENT, EINVAL (INBOX, bad name), EPERM */
int store_create(const char *user, const char *name);
int store_delete(const char *user, const char *name);
int store_rename(const char *user, const char *from, const char *to);
/* Every mailbox of USER, sorted; CB may not change the store. */
int store_list(const char *user, void (*cb)(const char *name, void *arg), void *arg);
int store_subscribe(const char *user, const char *name, bool on);
bool store_subscribed(const char *user, const char *name);

/* Small per-user files beside the mailboxes (NAME of [a-z.-], at most 1 MiB): read whole
 * (malloc'd, NUL-terminated; NULL with errno, ENOENT when there is none), or replaced
 * durably (write, fsync, rename). */
char *store_user_file_read(const char *user, const char *name, size_t *len);
int store_user_file_write(const char *user, const char *name, const void *data, size_t len);

/* Durable delivery into USER's INBOX new/ by any process (submitd). 0 or -1 with errno. */
int store_deliver(const char *user, const void *data, size_t len);

/* One descriptor for deliveries by other processes into any open mailbox's new/ (-1 if inotify
 * is unavailable); when it is readable, store_changes adopts them and tells the listeners. */
int store_changes_fd(void);
void store_changes(void);

/* Shared handle, reference counted; NULL with errno ENOENT when there is no such mailbox. */
struct mbox *mbox_open(const char *user, const char *name);
void mbox_close(struct mbox *mb);
/* Mailboxes open in this process (a session that ends must leave none of its own behind). */
size_t mbox_open_count(void);
void mbox_view(const struct mbox *mb, struct mbox_view *v);
int mbox_listen(struct mbox *mb, mbox_listener cb, void *arg);
void mbox_unlisten(struct mbox *mb, mbox_listener cb, void *arg);
/* Tell listeners about changes made since the last call (the caller's own session included). */
void mbox_notify(struct mbox *mb);

/* Adopt messages delivered into new/ since the last look. */
int mbox_rescan(struct mbox *mb);
/* Index of the keyword, added when CREATE and there is room; -1 otherwise. */
int mbox_keyword(struct mbox *mb, const char *name, bool create);
/* Durable APPEND; *UID gets the message's UID. -1 with errno (EFBIG, ENOSPC, EIO). */
int mbox_append(struct mbox *mb, const void *data, size_t len, uint32_t flags, uint64_t keywords,
		int64_t internaldate, int zone_minutes, uint32_t *uid);
/* Set a message's flags (by index); bumps its MODSEQ when they change. Saved by mbox_commit. */
bool mbox_set_flags(struct mbox *mb, size_t index, uint32_t flags, uint64_t keywords);
/* Drop RECENT from every message (the first SELECT takes it). */
void mbox_clear_recent(struct mbox *mb);
/* Remove every \Deleted message (only those whose UID satisfies KEEP_IF == NULL or returns
 * false for); their UIDs are appended to OUT (malloc'd) in increasing order. */
int mbox_expunge(struct mbox *mb, bool (*only)(uint32_t uid, void *arg), void *arg,
		 uint32_t **out, size_t *out_count);
int mbox_commit(struct mbox *mb);
/* The message's bytes, malloc'd (callers free). */
int mbox_read(struct mbox *mb, const struct mb_msg *m, char **data, size_t *len);
/* COPY: a new message in DST with the same content, flags and keywords by name. */
int mbox_copy(struct mbox *src, const struct mb_msg *m, struct mbox *dst, uint32_t *uid);
int mbox_index_of_uid(const struct mbox *mb, uint32_t uid); /* -1 when absent */

#endif
