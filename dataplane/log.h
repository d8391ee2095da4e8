/* Logging: stderr in the foreground, a file with -l, syslog for a daemon without -l.
 * lg_log_fatal is for start-up failures and broken invariants only. */
#ifndef LG_LOG_H
#define LG_LOG_H

#include <stdbool.h>

enum lg_log_level { LG_LOG_ERR, LG_LOG_WARN, LG_LOG_INFO, LG_LOG_DEBUG };

/* PATH may be NULL. Returns 0 or -1 (the file cannot be opened). */
int lg_log_open(const char *path, bool to_syslog);
/* While on, every message is also copied to stderr (a daemon before it is ready). */
void lg_log_copy_to_stderr(bool on);
/* Messages less urgent than LEVEL are dropped (default LG_LOG_INFO). */
void lg_log_set_level(enum lg_log_level level);
void lg_log(enum lg_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lg_log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
