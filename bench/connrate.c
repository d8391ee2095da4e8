/* TCP connections per second and small packets per second through the testbed, for make bench.
 *   connrate serve PORT                       accept, echo what arrives, until killed
 *   connrate run ADDR PORT SECONDS THREADS    connections: prints
 *       "connections N seconds S rate R failures F"
 *   connrate rr ADDR PORT SECONDS CONNS       64-byte request/response on CONNS connections
 *       (2 threads): prints "transactions N seconds S rate R"
 * Each "run" client connects (a whole three-way handshake) and closes with a reset, so that
 * no TIME_WAIT state piles up on the client and its ports are reused. In "rr" every
 * connection has one 64-byte message in flight at a time, Nagle off: the stack cannot merge
 * them, so every message is one small packet each way. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64
#define SERVE_THREADS 2
#define RR_THREADS 2
#define RR_MAX_CONNS 1024
#define MSG_LEN 64

static struct sockaddr_in target;
static double run_seconds;
static atomic_ullong done_count, fail_count;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *client(void *arg)
{
	double end = *(const double *)arg;
	struct linger rst = { 1, 0 };
	struct timeval timeout = { 1, 0 };

	while (now_s() < end) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0) {
			atomic_fetch_add(&fail_count, 1);
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
		/* a SYN the path drops fails after 1 s instead of after the retries */
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
		if (connect(fd, (struct sockaddr *)&target, sizeof(target)) == 0)
			atomic_fetch_add(&done_count, 1);
		else
			atomic_fetch_add(&fail_count, 1);
		close(fd);
	}
	return NULL;
}

/* One epoll per thread; the listening socket is shared (EPOLLEXCLUSIVE), connections stay
 * with the thread that accepted them. */
static void *server(void *arg)
{
	int lfd = *(const int *)arg, ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = lfd }, evs[64];

	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	for (;;) {
		int n = epoll_wait(ep, evs, 64, -1);

		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd, one = 1;
			char buf[4096];
			ssize_t got;

			if (fd == lfd) {
				fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
				if (fd < 0)
					continue;
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				ev = (struct epoll_event){ .events = EPOLLIN, .data.fd = fd };
				epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				continue;
			}
			got = read(fd, buf, sizeof(buf));
			if (got > 0) {
				if (write(fd, buf, (size_t)got) < 0)
					close(fd);
			} else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
				close(fd);
			}
		}
	}
	return NULL;
}

static int serve(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	pthread_t tid[SERVE_THREADS];
	int one = 1, lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 4096) < 0) {
		perror("connrate serve");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	for (int i = 0; i < SERVE_THREADS; i++)
		pthread_create(&tid[i], NULL, server, &lfd);
	pthread_join(tid[0], NULL);
	return 0;
}

struct rr_thread {
	int fds[RR_MAX_CONNS];
	int count;
	double end;
	unsigned long long transactions;
};

static bool full_io(int fd, char *buf, bool writing)
{
	size_t done = 0;

	while (done < MSG_LEN) {
		ssize_t n = writing ? write(fd, buf + done, MSG_LEN - done)
				    : read(fd, buf + done, MSG_LEN - done);

		if (n <= 0)
			return false;
		done += (size_t)n;
	}
	return true;
}

/* All connections send, then all read their answer: COUNT messages in flight, one each. */
static void *rr_client(void *arg)
{
	struct rr_thread *t = arg;
	char msg[MSG_LEN];

	memset(msg, 'x', sizeof(msg));
	while (now_s() < t->end) {
		for (int i = 0; i < t->count; i++)
			if (!full_io(t->fds[i], msg, true))
				return NULL;
		for (int i = 0; i < t->count; i++)
			if (!full_io(t->fds[i], msg, false))
				return NULL;
		t->transactions += (unsigned long long)t->count;
	}
	return NULL;
}

static int request_response(double seconds, int conns)
{
	static struct rr_thread t[RR_THREADS];
	pthread_t tid[RR_THREADS];
	unsigned long long total = 0;
	double start;

	for (int i = 0; i < conns; i++) {
		struct rr_thread *th = &t[i % RR_THREADS];
		int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0 || connect(fd, (struct sockaddr *)&target, sizeof(target)) < 0) {
			perror("connrate rr: connect");
			return 1;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		th->fds[th->count++] = fd;
	}
	start = now_s();
	for (int i = 0; i < RR_THREADS; i++) {
		t[i].end = start + seconds;
		pthread_create(&tid[i], NULL, rr_client, &t[i]);
	}
	for (int i = 0; i < RR_THREADS; i++) {
		pthread_join(tid[i], NULL);
		total += t[i].transactions;
	}
	printf("transactions %llu seconds %.2f rate %.0f\n", total, now_s() - start,
	       (double)total / (now_s() - start));
	return 0;
}

int main(int argc, char **argv)
{
	pthread_t tid[MAX_THREADS];
	int threads;
	double start, end;

	if (argc == 3 && strcmp(argv[1], "serve") == 0)
		return serve(atoi(argv[2]));
	if (argc != 6 || (strcmp(argv[1], "run") != 0 && strcmp(argv[1], "rr") != 0)) {
		fprintf(stderr, "usage: connrate serve PORT | connrate run ADDR PORT SECONDS THREADS | "
				"connrate rr ADDR PORT SECONDS CONNS\n");
		return 2;
	}
	target.sin_family = AF_INET;
	target.sin_port = htons((uint16_t)atoi(argv[3]));
	if (inet_pton(AF_INET, argv[2], &target.sin_addr) != 1) {
		fprintf(stderr, "connrate: bad address %s\n", argv[2]);
		return 2;
	}
	run_seconds = atof(argv[4]);
	threads = atoi(argv[5]);
	if (run_seconds <= 0 || threads < 1 || (threads > MAX_THREADS && strcmp(argv[1], "rr") != 0)) {
		fprintf(stderr, "connrate: SECONDS > 0 and THREADS 1..%d\n", MAX_THREADS);
		return 2;
	}
	if (strcmp(argv[1], "rr") == 0) {
		if (threads > RR_MAX_CONNS) {
			fprintf(stderr, "connrate: at most %d connections\n", RR_MAX_CONNS);
			return 2;
		}
		return request_response(run_seconds, threads);
	}
	start = now_s();
	end = start + run_seconds;
	for (int i = 0; i < threads; i++)
		pthread_create(&tid[i], NULL, client, &end);
	for (int i = 0; i < threads; i++)
		pthread_join(tid[i], NULL);
	printf("connections %llu seconds %.2f rate %.0f failures %llu\n",
	       (unsigned long long)done_count, now_s() - start,
	       (double)done_count / (now_s() - start), (unsigned long long)fail_count);
	return 0;
}
