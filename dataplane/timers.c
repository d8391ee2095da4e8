#include "dataplane/timers.h"

#include <stdlib.h>

#define MASK (LG_TIMER_SLOTS - 1)
#define WORDS (LG_TIMER_SLOTS / 64)

struct wheel {
	uint32_t head[LG_TIMER_SLOTS]; /* record index, LG_FLOWTAB_NONE when empty */
	uint64_t busy[WORDS];          /* a bit per slot that has a flow */
	size_t count;
};

struct lg_timers {
	struct lg_flowtab *t;
	uint32_t cur; /* the next second to look at: every earlier slot time is done */
	struct wheel wheel[LG_TIMER_CLASSES];
};

struct lg_timers *lg_timers_create(struct lg_flowtab *t, uint32_t now_s)
{
	struct lg_timers *tm = calloc(1, sizeof(*tm));

	if (!tm)
		return NULL;
	tm->t = t;
	tm->cur = now_s;
	for (int c = 0; c < LG_TIMER_CLASSES; c++)
		for (size_t s = 0; s < LG_TIMER_SLOTS; s++)
			tm->wheel[c].head[s] = LG_FLOWTAB_NONE;
	return tm;
}

void lg_timers_destroy(struct lg_timers *tm)
{
	free(tm);
}

static struct lg_flow *rec(const struct lg_timers *tm, uint32_t i)
{
	return lg_flowtab_record(tm->t, i);
}

bool lg_timers_armed(const struct lg_flow *f, enum lg_timer_class *cls)
{
	if (!f->wheel)
		return false;
	if (cls)
		*cls = (enum lg_timer_class)(f->wheel - 1);
	return true;
}

void lg_timers_disarm(struct lg_timers *tm, struct lg_flow *f)
{
	struct wheel *w;
	uint32_t slot = f->wheel_slot;

	if (!f->wheel)
		return;
	w = &tm->wheel[f->wheel - 1];
	if (f->link_prev != LG_FLOWTAB_NONE)
		rec(tm, f->link_prev)->link_next = f->link_next;
	else
		w->head[slot] = f->link_next;
	if (f->link_next != LG_FLOWTAB_NONE)
		rec(tm, f->link_next)->link_prev = f->link_prev;
	if (w->head[slot] == LG_FLOWTAB_NONE)
		w->busy[slot / 64] &= ~(1ull << (slot % 64));
	f->link_prev = f->link_next = LG_FLOWTAB_NONE;
	f->wheel = 0;
	w->count--;
}

static uint32_t clamp_due(const struct lg_timers *tm, uint32_t due_s)
{
	/* a slot's flows are all due when the cursor reaches it: never beyond one turn */
	if ((int32_t)(due_s - tm->cur) < 0)
		return tm->cur;
	return due_s - tm->cur > MASK ? tm->cur + MASK : due_s;
}

bool lg_timers_early(const struct lg_timers *tm, const struct lg_flow *f, uint32_t due_s)
{
	uint32_t slot_time = tm->cur + ((f->wheel_slot - tm->cur) & MASK);

	return (int32_t)(clamp_due(tm, due_s) - slot_time) > 0;
}

void lg_timers_arm(struct lg_timers *tm, struct lg_flow *f, enum lg_timer_class cls, uint32_t due_s)
{
	struct wheel *w = &tm->wheel[cls];
	uint32_t self = lg_flowtab_index_of(tm->t, f), slot;

	lg_timers_disarm(tm, f);
	slot = clamp_due(tm, due_s) & MASK;
	f->link_prev = LG_FLOWTAB_NONE;
	f->link_next = w->head[slot];
	if (f->link_next != LG_FLOWTAB_NONE)
		rec(tm, f->link_next)->link_prev = self;
	w->head[slot] = self;
	w->busy[slot / 64] |= 1ull << (slot % 64);
	f->wheel = (uint8_t)(cls + 1);
	f->wheel_slot = (uint16_t)slot;
	w->count++;
}

/* Distance from slot FROM to the first busy slot of W within SPAN slots, or SPAN. */
static uint32_t next_busy(const struct wheel *w, uint32_t from, uint32_t span)
{
	uint32_t k = 0;

	while (k < span) {
		uint32_t s = (from + k) & MASK;
		uint64_t bits = w->busy[s / 64] >> (s % 64);

		if (bits)
			return k + (uint32_t)__builtin_ctzll(bits) < span ? k + (uint32_t)__builtin_ctzll(bits)
									  : span;
		k += 64 - s % 64;
	}
	return span;
}

size_t lg_timers_run(struct lg_timers *tm, uint32_t now_s, size_t max,
		     void (*fn)(struct lg_flow *f, void *arg), void *arg)
{
	size_t done = 0;

	if ((int32_t)(now_s - tm->cur) < 0)
		return 0;
	/* more than a turn behind: every flow on the wheels is due, whatever its slot */
	if (now_s - tm->cur > MASK)
		tm->cur = now_s - MASK;
	while ((int32_t)(now_s - tm->cur) >= 0) {
		uint32_t span = now_s - tm->cur + 1, step = span, slot;
		bool emptied = true;

		for (int c = 0; c < LG_TIMER_CLASSES; c++) {
			uint32_t k = next_busy(&tm->wheel[c], tm->cur & MASK, span);

			if (k < step)
				step = k;
		}
		if (step == span) {
			tm->cur = now_s + 1;
			break;
		}
		tm->cur += step;
		slot = tm->cur & MASK;
		for (int c = 0; c < LG_TIMER_CLASSES; c++) {
			struct wheel *w = &tm->wheel[c];

			while (w->head[slot] != LG_FLOWTAB_NONE) {
				struct lg_flow *f = rec(tm, w->head[slot]);

				if (done == max) {
					emptied = false;
					break;
				}
				lg_timers_disarm(tm, f);
				fn(f, arg);
				done++;
			}
		}
		if (!emptied)
			break;
		tm->cur++;
	}
	return done;
}

struct lg_flow *lg_timers_first(struct lg_timers *tm, enum lg_timer_class cls)
{
	const struct wheel *w = &tm->wheel[cls];
	uint32_t k;

	if (w->count == 0)
		return NULL;
	k = next_busy(w, tm->cur & MASK, LG_TIMER_SLOTS);
	return k < LG_TIMER_SLOTS ? rec(tm, w->head[(tm->cur + k) & MASK]) : NULL;
}

size_t lg_timers_count(const struct lg_timers *tm, enum lg_timer_class cls)
{
	return tm->wheel[cls].count;
}
