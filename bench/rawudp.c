/*
 * rawudp: the baseline for `slm ping` on this machine: a UDP echo on
 * loopback with both sides busy-polling (recvfrom with MSG_DONTWAIT in a
 * loop) and no protocol at all.  Built and run by bench/bench_rpc.sh.
 *
 *   rawudp N      N round trips of 48-byte datagrams; prints
 *                 "min p50 p99 p999" in microseconds
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static atomic_bool stop;
static int server_fd;

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void *echo(void *arg)
{
	(void)arg;
	char buf[2048];
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		struct sockaddr_storage from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(server_fd, buf, sizeof(buf), MSG_DONTWAIT,
				     (struct sockaddr *)&from, &fl);
		if (n > 0)
			sendto(server_fd, buf, (size_t)n, 0,
			       (struct sockaddr *)&from, fl);
	}
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 20000;
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	server_fd = socket(AF_INET, SOCK_DGRAM, 0);
	socklen_t al = sizeof(a);
	if (bind(server_fd, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(server_fd, (struct sockaddr *)&a, &al))
		return 1;
	pthread_t t;
	pthread_create(&t, NULL, echo, NULL);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)))
		return 1;
	uint64_t *lat = malloc((size_t)n * sizeof(*lat));
	char buf[64] = {0};
	int got = 0;
	for (int i = 0; i < n; i++) {
		uint64_t t0 = now_ns();
		if (send(fd, buf, 48, 0) < 0)
			break;
		for (;;) {
			if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
				lat[got++] = now_ns() - t0;
				break;
			}
			if (now_ns() - t0 > 1000000000ull)
				break;
		}
	}
	atomic_store(&stop, true);
	pthread_join(t, NULL);
	qsort(lat, (size_t)got, sizeof(*lat), cmp);
	if (!got)
		return 1;
	printf("%.2f %.2f %.2f %.2f\n", lat[0] / 1e3, lat[got / 2] / 1e3,
	       lat[(size_t)got * 99 / 100] / 1e3,
	       lat[(size_t)got * 999 / 1000] / 1e3);
	return 0;
}
