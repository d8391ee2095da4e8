/* Idle timers for every flow, at a cost proportional to what falls due, never a scan: one
 * timing wheel per eviction class, 1-second slots, 18 hours around. A flow is armed at its
 * deadline when it is made; traffic only moves its last-seen time, and the wheel, finding it
 * when its slot comes, either ends it or arms it again at its real deadline (lazy re-arming:
 * one look per idle period, not one list move per packet). A deadline that moves earlier
 * (a FIN or RST) is re-armed at once. Not thread-safe: under the engine's writer lock. */
#ifndef LG_TIMERS_H
#define LG_TIMERS_H

#include "dataplane/flowtab.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Eviction order under overload: transitory first, then other flows, then mail, and mail
 * sessions seen idling in IMAP IDLE last of all. */
enum lg_timer_class { LG_TIMER_TRANSITORY, LG_TIMER_OTHER, LG_TIMER_MAIL, LG_TIMER_MAIL_IDLE,
		      LG_TIMER_CLASSES };

#define LG_TIMER_SLOTS 65536u

struct lg_timers;

struct lg_timers *lg_timers_create(struct lg_flowtab *t, uint32_t now_s);
void lg_timers_destroy(struct lg_timers *tm);

/* Put F on CLASS's wheel to be looked at DUE_S (clamped to the wheel's span), off any other. */
void lg_timers_arm(struct lg_timers *tm, struct lg_flow *f, enum lg_timer_class cls, uint32_t due_s);
void lg_timers_disarm(struct lg_timers *tm, struct lg_flow *f);
bool lg_timers_armed(const struct lg_flow *f, enum lg_timer_class *cls);

/* Take off the wheels, one at a time, at most MAX flows whose slot time is NOW_S or earlier,
 * and hand each to FN, which must arm it again later than NOW_S or end it. Returns how many;
 * fewer than MAX means nothing more is due by NOW_S. MAX 0 only moves the wheels' clock over
 * empty slots (before the first arm, so that deadlines are measured from the right time). */
size_t lg_timers_run(struct lg_timers *tm, uint32_t now_s, size_t max,
		     void (*fn)(struct lg_flow *f, void *arg), void *arg);

/* Is armed F on a slot earlier than the one DUE_S would give it (traffic since it was armed)? */
bool lg_timers_early(const struct lg_timers *tm, const struct lg_flow *f, uint32_t due_s);

/* The flow of CLASS that is due soonest, or NULL. */
struct lg_flow *lg_timers_first(struct lg_timers *tm, enum lg_timer_class cls);
size_t lg_timers_count(const struct lg_timers *tm, enum lg_timer_class cls);

#endif
