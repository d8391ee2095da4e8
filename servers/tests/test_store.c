#include "lgtest.h"
#include "servers/mail/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[64];

static void rm_rf(const char *path)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", path);
}

static void names_cb(const char *name, void *arg)
{
	char *out = arg;

	strcat(out, name);
	strcat(out, ",");
}

static void test_mailboxes(void)
{
	char names[512] = "";

	CHECK(store_user_init("alice") == 0, "user init");
	CHECK(store_exists("alice", "INBOX"), "INBOX made");
	CHECK(store_create("alice", "Work/Projects/2026") == 0, "create with superiors");
	CHECK(store_exists("alice", "Work") && store_exists("alice", "Work/Projects"), "superiors exist");
	CHECK(store_create("alice", "Work") < 0 && errno == EEXIST, "exists");
	CHECK(store_create("alice", "../etc") == 0, "dots are a name like any other (its superior too)");
	CHECK(store_create("alice", "a//b") < 0 && errno == EINVAL, "empty level refused");
	CHECK(store_create("alice", "caf\xc3\xa9") < 0 && errno == EINVAL, "raw UTF-8 refused");
	CHECK(store_create("alice", "bad*") < 0 && errno == EINVAL, "wildcard refused");
	CHECK(store_create("../bob", "x") < 0, "a user name cannot leave the root");
	store_list("alice", names_cb, names);
	CHECK_EQ_STR(names, "..,../etc,INBOX,Work,Work/Projects,Work/Projects/2026,", "sorted list");
	CHECK(store_delete("alice", "Work") < 0 && errno == ENOTEMPTY, "delete with inferiors refused");
	CHECK(store_rename("alice", "Work", "Job") == 0, "rename with inferiors");
	CHECK(store_exists("alice", "Job/Projects/2026") && !store_exists("alice", "Work/Projects"),
	      "inferiors renamed");
	CHECK(store_rename("alice", "Job", "Job/x") < 0 && errno == EINVAL, "rename into itself refused");
	CHECK(store_delete("alice", "Job/Projects/2026") == 0, "delete a leaf");
	CHECK(store_delete("alice", "INBOX") < 0, "INBOX cannot be deleted");
	CHECK(store_subscribe("alice", "Job", true) == 0 && store_subscribed("alice", "Job"), "subscribe");
	CHECK(store_subscribe("alice", "Job", false) == 0 && !store_subscribed("alice", "Job"), "unsubscribe");
}

static void test_messages(void)
{
	struct mbox *mb = mbox_open("alice", "INBOX");
	struct mbox_view v;
	uint32_t uid1, uid2, *gone;
	size_t n, len;
	char *data;
	uint32_t validity;

	CHECK(mb != NULL, "open INBOX");
	if (!mb)
		return;
	CHECK(mbox_append(mb, "Subject: 1\r\n\r\none\r\n", 19, MB_SEEN, 0, 1000, 60, &uid1) == 0 &&
	      uid1 == 1, "append 1");
	int k = mbox_keyword(mb, "$Forwarded", true);
	CHECK(k == 0, "first keyword");
	CHECK(mbox_append(mb, "Subject: 2\r\n\r\ntwo\r\n", 19, 0, 1ull << k, 2000, 0, &uid2) == 0 &&
	      uid2 == 2, "append 2");
	CHECK(mbox_open("alice", "INBOX") == mb, "a second open shares the mailbox");
	mbox_close(mb);
	mbox_view(mb, &v);
	validity = v.uidvalidity;
	CHECK(v.count == 2 && v.uidnext == 3 && (v.msgs[0].flags & MB_RECENT), "two messages, recent");
	CHECK(mbox_read(mb, &v.msgs[1], &data, &len) == 0 && len == 19 && memcmp(data, "Subject: 2", 10) == 0,
	      "read back");
	free(data);
	uint64_t before = v.highestmodseq;

	CHECK(mbox_set_flags(mb, 0, v.msgs[0].flags | MB_DELETED, 0), "flag change");
	mbox_view(mb, &v);
	CHECK(v.highestmodseq == before + 1 && v.msgs[0].modseq == v.highestmodseq, "modseq bumped");
	CHECK(!mbox_set_flags(mb, 0, v.msgs[0].flags, 0), "no change, no modseq");
	CHECK(mbox_expunge(mb, NULL, NULL, &gone, &n) == 0 && n == 1 && gone[0] == 1, "expunge uid 1");
	free(gone);
	mbox_view(mb, &v);
	CHECK(v.count == 1 && v.expunged_count == 1 && v.expunged[0].uid == 1, "expunged remembered");
	mbox_close(mb);

	/* persisted: reopen from disk */
	mb = mbox_open("alice", "INBOX");
	mbox_view(mb, &v);
	CHECK(v.count == 1 && v.msgs[0].uid == 2 && v.uidvalidity == validity && v.uidnext == 3 &&
	      v.keyword_count == 1 && v.msgs[0].keywords == 1 && v.msgs[0].internaldate == 2000,
	      "index survives a reopen");
	mbox_close(mb);

	/* a delivery by another process, and a file the index lost (a crash after the rename) */
	CHECK(store_deliver("alice", "Subject: 3\r\n\r\nthree\r\n", 21) == 0, "deliver to new/");
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/alice/mailboxes/INBOX/cur/orphan:2,S", root);
	f = fopen(path, "w");
	fputs("Subject: orphan\r\n\r\n", f);
	fclose(f);
	mb = mbox_open("alice", "INBOX");
	mbox_view(mb, &v);
	CHECK(v.count == 3 && v.msgs[1].uid == 3 && v.msgs[2].uid == 4 && v.uidnext == 5,
	      "orphan and delivery adopted with new UIDs");
	bool seen_orphan = false;

	for (size_t i = 0; i < v.count; i++)
		seen_orphan |= strcmp(v.msgs[i].file, "orphan:2,S") == 0 && (v.msgs[i].flags & MB_SEEN);
	CHECK(seen_orphan, "Maildir info flags read on adoption");
	/* a message file removed behind our back: dropped as expunged at the next open */
	snprintf(path, sizeof(path), "%s/alice/mailboxes/INBOX/cur/%s", root, v.msgs[0].file);
	mbox_close(mb);
	unlink(path);
	mb = mbox_open("alice", "INBOX");
	mbox_view(mb, &v);
	CHECK(v.count == 2 && v.msgs[0].uid == 3, "entry without a file dropped");
	mbox_close(mb);

	/* a damaged index: rebuilt from the files under a new UIDVALIDITY */
	snprintf(path, sizeof(path), "%s/alice/mailboxes/INBOX/lemongate.index", root);
	f = fopen(path, "w");
	fputs("garbage\n", f);
	fclose(f);
	mb = mbox_open("alice", "INBOX");
	mbox_view(mb, &v);
	CHECK(mb && v.count == 2 && v.uidvalidity != validity, "damaged index rebuilt, new UIDVALIDITY");
	mbox_close(mb);
	CHECK(mbox_open("alice", "Nope") == NULL && errno == ENOENT, "no such mailbox");
}

static void test_copy(void)
{
	struct mbox *src, *dst;
	struct mbox_view v;
	uint32_t uid;

	store_create("alice", "Archive");
	src = mbox_open("alice", "INBOX");
	dst = mbox_open("alice", "Archive");
	mbox_view(src, &v);
	CHECK(mbox_copy(src, &v.msgs[0], dst, &uid) == 0 && uid == 1, "copy");
	mbox_view(dst, &v);
	CHECK(v.count == 1 && (v.msgs[0].flags & MB_RECENT), "copy is recent in the target");
	mbox_close(src);
	mbox_close(dst);
	CHECK(store_delete("alice", "Archive") == 0, "delete with messages");
}

int main(void)
{
	char err[256];

	snprintf(root, sizeof(root), "/tmp/lg-store-test-%d", (int)getpid());
	mkdir(root, 0700);
	CHECK(store_init(root, err, sizeof(err)) == 0, "init: %s", err);
	test_mailboxes();
	test_messages();
	test_copy();
	rm_rf(root);
	return lgtest_finish();
}
