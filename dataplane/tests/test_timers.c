/* The timing wheels: flows come due at their slot time, not before; a run is bounded; a jump
 * of more than a turn still finds every flow; lazy re-arming; the soonest flow of a class. */
#include "dataplane/flowtab.h"
#include "dataplane/timers.h"
#include "lgtest.h"

struct seen {
	struct lg_timers *tm;
	uint32_t now;
	size_t n;
	uint32_t rearm_to; /* 0: end the flow (leave it disarmed) */
	struct lg_flow *order[64];
};

static void on_due(struct lg_flow *f, void *arg)
{
	struct seen *s = arg;

	if (s->n < 64)
		s->order[s->n] = f;
	s->n++;
	if (s->rearm_to)
		lg_timers_arm(s->tm, f, LG_TIMER_OTHER, s->rearm_to);
}

static struct lg_flow *flow(struct lg_flowtab *t)
{
	return lg_flowtab_alloc(t);
}

int main(void)
{
	struct lg_flowtab *t = lg_flowtab_create(4096, 3);
	struct lg_timers *tm = lg_timers_create(t, 1000);
	struct lg_flow *a = flow(t), *b = flow(t), *c = flow(t), *many[3000];
	struct seen s = { .tm = tm };
	enum lg_timer_class cls;

	lg_timers_arm(tm, a, LG_TIMER_OTHER, 1100);
	lg_timers_arm(tm, b, LG_TIMER_MAIL, 1050);
	lg_timers_arm(tm, c, LG_TIMER_TRANSITORY, 1240);
	CHECK(lg_timers_armed(b, &cls) && cls == LG_TIMER_MAIL, "armed in its class");
	CHECK(lg_timers_first(tm, LG_TIMER_OTHER) == a, "soonest of a class");
	CHECK_EQ_INT(lg_timers_run(tm, 1049, 100, on_due, &s), 0, "nothing before its second");
	CHECK_EQ_INT(lg_timers_run(tm, 1050, 100, on_due, &s), 1, "due at its second");
	CHECK(s.order[0] == b && !lg_timers_armed(b, NULL), "the due flow, off the wheel");
	lg_timers_disarm(tm, c);
	CHECK_EQ_INT(lg_timers_count(tm, LG_TIMER_TRANSITORY), 0, "disarmed");
	CHECK_EQ_INT(lg_timers_run(tm, 1300, 100, on_due, &s), 1, "a disarmed flow never comes");
	CHECK(s.order[1] == a, "the other one did");

	/* lazy re-arming: handed over, armed again later, comes again then */
	s.n = 0;
	s.rearm_to = 1500;
	lg_timers_arm(tm, a, LG_TIMER_OTHER, 1400);
	CHECK_EQ_INT(lg_timers_run(tm, 1400, 100, on_due, &s), 1, "looked at when its slot comes");
	CHECK(lg_timers_armed(a, NULL), "re-armed by the callback");
	CHECK(lg_timers_early(tm, a, 1600), "a later deadline than its slot is early");
	CHECK(!lg_timers_early(tm, a, 1500), "its own deadline is not");
	s.rearm_to = 0;
	CHECK_EQ_INT(lg_timers_run(tm, 1499, 100, on_due, &s), 0, "not before the new deadline");
	CHECK_EQ_INT(lg_timers_run(tm, 1500, 100, on_due, &s), 1, "at the new deadline");

	/* far deadlines are clamped to a turn and come back to be re-armed, not lost */
	s.n = 0;
	lg_timers_arm(tm, a, LG_TIMER_OTHER, 1500 + 10 * LG_TIMER_SLOTS);
	CHECK_EQ_INT(lg_timers_run(tm, 1500 + LG_TIMER_SLOTS - 2, 100, on_due, &s), 0,
		     "not within the turn");
	CHECK_EQ_INT(lg_timers_run(tm, 1500 + LG_TIMER_SLOTS, 100, on_due, &s), 1,
		     "handed over after a turn, to be armed again");

	/* bounded runs, and a jump of many turns (a test clock advancing 30 days) */
	uint32_t base = 1500 + LG_TIMER_SLOTS + 1;
	for (int i = 0; i < 3000; i++) {
		many[i] = flow(t);
		lg_timers_arm(tm, many[i], (enum lg_timer_class)(i % 3), base + (uint32_t)(i % 500));
	}
	s.n = 0;
	CHECK_EQ_INT(lg_timers_run(tm, base + 30 * 86400, 1024, on_due, &s), 1024, "a run stops at its bound");
	CHECK_EQ_INT(lg_timers_run(tm, base + 30 * 86400, 1024, on_due, &s), 1024, "and goes on");
	CHECK_EQ_INT(lg_timers_run(tm, base + 30 * 86400, 1024, on_due, &s), 952, "to the last one");
	CHECK_EQ_INT(lg_timers_count(tm, LG_TIMER_OTHER) + lg_timers_count(tm, LG_TIMER_MAIL) +
			     lg_timers_count(tm, LG_TIMER_TRANSITORY), 0, "wheels empty");
	lg_timers_arm(tm, a, LG_TIMER_OTHER, base + 30 * 86400 + 10);
	s.n = 0;
	CHECK_EQ_INT(lg_timers_run(tm, base + 30 * 86400 + 9, 10, on_due, &s), 0,
		     "armed after the jump: measured from the new time");
	lg_timers_destroy(tm);
	lg_flowtab_destroy(t);
	return lgtest_finish();
}
