/* The control socket: a root-only UNIX socket that answers lemongatectl (protocol in
 * include/lg_control_proto.h). Served from the main thread, one request per connection. */
#ifndef LG_CONTROL_H
#define LG_CONTROL_H

#include "dataplane/engine.h"
#include "dataplane/nfq.h"

#include <stddef.h>

struct lg_knat;

struct lg_control_ctx {
	struct lg_engine *engine;
	struct lg_nfq *const *queues;
	size_t queue_count;
	uint64_t started_ns;
	const struct lg_knat *knat; /* NULL: no kernel NAT offload */
	/* Where the daemon's own ICMP errors go; clock advance sends what falls due at once. */
	lg_icmp_send_fn *send_icmp;
	void *send_icmp_arg;
	/* Reload the configuration file: 0, or -1 with why in MSG (one line). */
	int (*reload)(void *arg, char *msg, size_t msglen);
	void *reload_arg;
};

struct lg_control;

/* Create the socket at PATH (its directory too). Root only (directory 0700, socket 0600), or,
 * with READ_GID >= 0, readable by that group too (0750 and 0660, group READ_GID): its members
 * may use the commands that change nothing. NULL with ERR set on failure. */
struct lg_control *lg_control_open(const char *path, long read_gid, char *err, size_t errlen);
int lg_control_fd(const struct lg_control *c);
/* Accept and answer one client; never blocks for more than about a second. */
void lg_control_serve(struct lg_control *c, const struct lg_control_ctx *ctx);
/* Close and unlink the socket. */
void lg_control_close(struct lg_control *c);

/* Answer one request line (exposed for unit tests). Writes the whole reply into OUT,
 * a FILE opened by the caller. READ_ONLY: the peer may only use commands that change nothing. */
void lg_control_answer(const char *request, const struct lg_control_ctx *ctx, bool read_only,
		       FILE *out);

#endif
