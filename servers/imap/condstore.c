/* CONDSTORE and QRESYNC (RFC 7162) beyond FETCH and STORE: turning CONDSTORE on, UID sets
 * on the wire, VANISHED (EARLIER), the QRESYNC parameter of SELECT, and holding back the
 * client's idea of HIGHESTMODSEQ while expunges are still unreported. */
#include "servers/imap/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void imap_condstore_on(struct imap_session *s)
{
	struct mbox_view v;

	if (s->condstore)
		return;
	s->condstore = true;
	if (!s->mb)
		return;
	/* RFC 7162 3.1: a client that enables CONDSTORE with a mailbox selected learns where
	 * the mailbox stands */
	mbox_view(s->mb, &v);
	srv_printf(s->conn, "* OK [HIGHESTMODSEQ %llu] CONDSTORE enabled\r\n",
		   (unsigned long long)v.highestmodseq);
}

void imap_uids_begin(struct imap_uid_writer *w, struct imap_session *s, const char *prefix)
{
	*w = (struct imap_uid_writer){ .s = s, .prefix = prefix };
}

static void uids_flush(struct imap_uid_writer *w)
{
	if (!w->pending)
		return;
	if (!w->written)
		srv_printf(w->s->conn, "%s", w->prefix);
	if (w->lo == w->hi)
		srv_printf(w->s->conn, "%s%u", w->written ? "," : "", w->lo);
	else
		srv_printf(w->s->conn, "%s%u:%u", w->written ? "," : "", w->lo, w->hi);
	w->written = true;
	w->pending = false;
}

void imap_uids_add(struct imap_uid_writer *w, uint32_t lo, uint32_t hi)
{
	if (w->pending && lo <= (uint64_t)w->hi + 1) {
		if (hi > w->hi)
			w->hi = hi;
		return;
	}
	uids_flush(w);
	w->lo = lo;
	w->hi = hi;
	w->pending = true;
}

bool imap_uids_end(struct imap_uid_writer *w, const char *suffix)
{
	uids_flush(w);
	if (w->written)
		srv_printf(w->s->conn, "%s", suffix);
	return w->written;
}

static int cmp_range(const void *a, const void *b)
{
	const struct imap_range *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* The set's ranges ascending, '*' as MAX; malloc'd. A NULL set is 1:MAX. */
static struct imap_range *sorted_ranges(struct imap_seqset *set, uint32_t max, size_t *n)
{
	struct imap_range *r;

	if (!set) {
		if (!(r = malloc(sizeof(*r))))
			return NULL;
		r[0] = (struct imap_range){ 1, max };
		*n = max ? 1 : 0;
		return r;
	}
	imap_seqset_resolve(set, max);
	if (!(r = malloc((set->n + 1) * sizeof(*r))))
		return NULL;
	memcpy(r, set->r, set->n * sizeof(*r));
	qsort(r, set->n, sizeof(*r), cmp_range);
	*n = set->n;
	return r;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Every UID below UIDNEXT that is not in the mailbox, within RANGES: what a client may have
 * known and lost, when the expunge history no longer reaches back far enough. */
static void vanished_by_gaps(struct imap_uid_writer *w, const struct mbox_view *v,
			     const struct imap_range *ranges, size_t nr)
{
	size_t i = 0, r = 0;
	uint32_t lo = 1;

	while (r < nr && lo < v->uidnext) {
		uint32_t hi = i < v->count ? v->msgs[i].uid - 1 : v->uidnext - 1;

		if (lo <= hi) {
			uint32_t a = ranges[r].lo > lo ? ranges[r].lo : lo;
			uint32_t b = ranges[r].hi < hi ? ranges[r].hi : hi;

			if (a <= b)
				imap_uids_add(w, a, b);
			if (ranges[r].hi <= hi) {
				r++;
				continue;
			}
		}
		if (i >= v->count)
			break;
		lo = v->msgs[i++].uid + 1;
	}
}

void imap_vanished_earlier(struct imap_session *s, uint64_t since, struct imap_seqset *uids)
{
	struct mbox_view v;
	struct imap_uid_writer w;
	struct imap_range *ranges;
	size_t nr;

	mbox_view(s->mb, &v);
	if (!(ranges = sorted_ranges(uids, v.uidnext > 1 ? v.uidnext - 1 : 1, &nr)))
		return;
	imap_uids_begin(&w, s, "* VANISHED (EARLIER) ");
	if (since >= v.expunged_complete_after) {
		uint32_t *list = malloc((v.expunged_count + 1) * sizeof(*list));
		size_t n = 0;

		for (size_t i = 0; list && i < v.expunged_count; i++) {
			const struct mb_expunged *e = &v.expunged[i];

			if (e->modseq > since && (!uids || imap_seqset_has(uids, e->uid)))
				list[n++] = e->uid;
		}
		if (list) {
			qsort(list, n, sizeof(*list), cmp_u32);
			for (size_t i = 0; i < n; i++)
				imap_uids_add(&w, list[i], list[i]);
		} else {
			vanished_by_gaps(&w, &v, ranges, nr); /* more than asked, never less */
		}
		free(list);
	} else {
		vanished_by_gaps(&w, &v, ranges, nr);
	}
	imap_uids_end(&w, "\r\n");
	free(ranges);
}

void imap_qresync_select(struct imap_session *s, uint64_t since, struct imap_seqset *known)
{
	imap_vanished_earlier(s, since, known);
	for (uint32_t seq = 1; seq <= s->view_count; seq++) {
		const struct mb_msg *m = imap_msg_at(s, seq);

		if (!m || m->modseq <= since || (known && !imap_seqset_has(known, m->uid)))
			continue;
		srv_printf(s->conn, "* %u FETCH (UID %u FLAGS ", seq, m->uid);
		imap_put_flags(s, m);
		srv_printf(s->conn, " MODSEQ (%llu))\r\n", (unsigned long long)m->modseq);
	}
}

static bool in_view(const struct imap_session *s, uint32_t uid)
{
	size_t lo = 0, hi = s->view_count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->view[mid] == uid)
			return true;
		if (s->view[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

void imap_hold_modseq(struct imap_session *s)
{
	struct mbox_view v;
	uint64_t lowest = 0;

	if (!s->condstore || !s->mb)
		return;
	mbox_view(s->mb, &v);
	/* expunges not yet reported are the ones after the last report, at the end of the list */
	for (size_t i = v.expunged_count; i-- > 0 && v.expunged[i].modseq > s->expunges_reported;)
		if (in_view(s, v.expunged[i].uid))
			lowest = v.expunged[i].modseq;
	if (lowest)
		srv_printf(s->conn, "* OK [HIGHESTMODSEQ %llu] expunges pending\r\n",
			   (unsigned long long)(lowest - 1));
}
