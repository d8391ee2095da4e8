#include "dataplane/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>
#include <time.h>

static FILE *log_file;
static bool log_syslog;
static bool log_copy_stderr;
static _Atomic int log_level = LG_LOG_INFO; /* set by the main thread, read by every thread */

void lg_log_set_level(enum lg_log_level level)
{
	log_level = (int)level;
}

void lg_log_copy_to_stderr(bool on)
{
	log_copy_stderr = on;
}

int lg_log_open(const char *path, bool to_syslog)
{
	if (path) {
		log_file = fopen(path, "a");
		if (!log_file)
			return -1;
		setvbuf(log_file, NULL, _IOLBF, 0);
		return 0;
	}
	log_syslog = to_syslog;
	if (to_syslog)
		openlog("lemongated", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	return 0;
}

static void vlog(enum lg_log_level level, const char *fmt, va_list ap)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	FILE *out = log_file ? log_file : stderr;
	char stamp[32];
	struct tm tm;
	time_t now;

	if ((int)level > log_level)
		return;
	if (log_copy_stderr && out != stderr && level <= LG_LOG_WARN) {
		va_list copy;

		va_copy(copy, ap);
		fprintf(stderr, "lemongated: %s: ", names[level]);
		vfprintf(stderr, fmt, copy);
		fputc('\n', stderr);
		va_end(copy);
	}
	if (log_syslog && !log_file) {
		vsyslog(prio[level], fmt, ap);
		return;
	}
	now = time(NULL);
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	flockfile(out);
	fprintf(out, "%s lemongated %s: ", stamp, names[level]);
	vfprintf(out, fmt, ap);
	fputc('\n', out);
	funlockfile(out);
}

void lg_log(enum lg_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(level, fmt, ap);
	va_end(ap);
}

void lg_log_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LG_LOG_ERR, fmt, ap);
	va_end(ap);
	exit(1);
}
