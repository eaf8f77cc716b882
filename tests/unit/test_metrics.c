#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctl/metrics.h"
#include "tests/unit/harness.h"

static char *render(const struct perf_snapshot *snap)
{
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	CU_ASSERT_EQUAL(metrics_render(snap, mem), 0);
	fclose(mem);
	char *copy = strdup(text ? text : "");
	free(text);
	return copy;
}

/* The value of the line that starts with `series ` exactly. */
static double value_of(const char *text, const char *series)
{
	size_t n = strlen(series);
	for (const char *line = text; line && *line;) {
		if (!strncmp(line, series, n) && line[n] == ' ')
			return strtod(line + n + 1, NULL);
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return -1;
}

static void test_render(void)
{
	struct perf_snapshot *snap = perf_snapshot_create();
	CU_ASSERT_PTR_NOT_NULL_FATAL(snap);
	perf_emit_counter(snap, "requests_total", "requests accepted", 12,
			  "group", "0", PERF_END);
	perf_emit_counter(snap, "requests_total", "requests accepted", 30,
			  "group", "1", PERF_END);
	perf_emit_counter_f(snap, "cpu_seconds_total", "cpu", 1.5, PERF_END);
	perf_emit_gauge(snap, "queue_depth", "waiting\nrequests", 4, "path",
			"a\"b\\c", PERF_END);
	struct slm_hist h;
	slm_hist_init(&h);
	slm_hist_record(&h, 500);	  /* 0.5 us */
	slm_hist_record(&h, 2000000);	  /* 2 ms */
	slm_hist_record(&h, 7000000);	  /* 7 ms */
	slm_hist_record(&h, 90000000000); /* 90 s: above every bound */
	perf_emit_hist(snap, "stage_seconds", "stage times", &h, "stage",
		       "decode_step", PERF_END);
	struct slm_hist sizes;
	slm_hist_init(&sizes);
	slm_hist_record(&sizes, 3);
	slm_hist_record(&sizes, 100);
	perf_emit_hist(snap, "batch_tokens", "tokens per batch", &sizes,
		       PERF_END);
	char *text = render(snap);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);

	CU_ASSERT_PTR_NOT_NULL(strstr(text, "# HELP slmd_requests_total "
					    "requests accepted\n# TYPE "
					    "slmd_requests_total counter\n"));
	CU_ASSERT_EQUAL(value_of(text, "slmd_requests_total{group=\"0\"}"), 12);
	CU_ASSERT_EQUAL(value_of(text, "slmd_requests_total{group=\"1\"}"), 30);
	CU_ASSERT_EQUAL(value_of(text, "slmd_cpu_seconds_total"), 1.5);
	/* Help and label values escaped as the format says. */
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "# HELP slmd_queue_depth "
					    "waiting\\nrequests\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "# TYPE slmd_queue_depth gauge"));
	CU_ASSERT_EQUAL(
		value_of(text, "slmd_queue_depth{path=\"a\\\"b\\\\c\"}"), 4);
	/* Histogram: seconds, cumulative, +Inf = count, sum in seconds. */
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "# TYPE slmd_stage_seconds "
					    "histogram"));
	const char *b = "slmd_stage_seconds_bucket{stage=\"decode_step\",le=";
	char series[128];
	snprintf(series, sizeof(series), "%s\"1e-06\"}", b);
	CU_ASSERT_EQUAL(value_of(text, series), 1);
	snprintf(series, sizeof(series), "%s\"0.001\"}", b);
	CU_ASSERT_EQUAL(value_of(text, series), 1);
	snprintf(series, sizeof(series), "%s\"0.0025\"}", b);
	CU_ASSERT_EQUAL(value_of(text, series), 2);
	snprintf(series, sizeof(series), "%s\"0.01\"}", b);
	CU_ASSERT_EQUAL(value_of(text, series), 3);
	snprintf(series, sizeof(series), "%s\"60\"}", b);
	CU_ASSERT_EQUAL(value_of(text, series), 3);
	snprintf(series, sizeof(series), "%s\"+Inf\"}", b);
	CU_ASSERT_EQUAL(value_of(text, series), 4);
	CU_ASSERT_EQUAL(value_of(text, "slmd_stage_seconds_count{stage=\""
				       "decode_step\"}"),
			4);
	double sum = value_of(text, "slmd_stage_seconds_sum{stage=\""
				    "decode_step\"}");
	CU_ASSERT(sum > 90.008 && sum < 90.01);
	/* A histogram without _seconds: powers of two, raw units. */
	CU_ASSERT_EQUAL(value_of(text, "slmd_batch_tokens_bucket{le=\"4\"}"),
			1);
	CU_ASSERT_EQUAL(value_of(text, "slmd_batch_tokens_bucket{le=\"128\"}"),
			2);
	CU_ASSERT_EQUAL(value_of(text, "slmd_batch_tokens_sum"), 103);
	/* Every family once. */
	const char *first = strstr(text, "# TYPE slmd_requests_total");
	CU_ASSERT_PTR_NULL(strstr(first + 1, "# TYPE slmd_requests_total"));
	free(text);
	perf_snapshot_free(snap);
}

/* ---- HTTP -------------------------------------------------------------- */

struct server {
	struct metrics_http *m;
	int stop;
	int health_status;
};

static char *page(void *ctx, size_t *len)
{
	char *text = strdup("# TYPE slmd_up gauge\nslmd_up 1\n");
	*len = strlen(text);
	return text;
}

static int health(void *ctx, char *buf, size_t size)
{
	struct server *s = ctx;
	snprintf(buf, size, "{\"status\":\"%s\"}\n",
		 s->health_status == 200 ? "ok" : "unavailable");
	return s->health_status;
}

static void *serve(void *arg)
{
	struct server *s = arg;
	int fd = metrics_http_epoll_fd(s->m);
	while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		poll(&p, 1, 20);
		metrics_http_poll(s->m);
	}
	return NULL;
}

/* GET path; the status code, and the body into body. */
static int http_get(const char *url, const char *method, const char *path,
		    char *body, size_t size)
{
	int port = atoi(strrchr(url, ':') + 1);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	char req[256];
	int n = snprintf(req, sizeof(req),
			 "%s %s HTTP/1.1\r\nHost: x\r\nConnection: "
			 "close\r\n\r\n",
			 method, path);
	if (write(fd, req, (size_t)n) != n) {
		close(fd);
		return -1;
	}
	char buf[8192];
	size_t got = 0;
	ssize_t r;
	while (got < sizeof(buf) - 1 &&
	       (r = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)r;
	buf[got] = '\0';
	close(fd);
	const char *b = strstr(buf, "\r\n\r\n");
	snprintf(body, size, "%s", b ? b + 4 : "");
	int status = 0;
	sscanf(buf, "HTTP/1.%*d %d", &status);
	return status;
}

static void test_http(void)
{
	struct server s = {.health_status = 503};
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(
		metrics_http_open("nonsense", page, health, &s, &s.m, &err),
		SLM_ECONFIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "HOST:PORT"));
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(metrics_http_open("127.0.0.1:99999", page, health, &s,
					  &s.m, &err),
			SLM_ECONFIG);
	slm_error_clear(&err);
	CU_ASSERT_EQUAL_FATAL(
		metrics_http_open("127.0.0.1:0", page, health, &s, &s.m, &err),
		0);
	const char *url = metrics_http_url(s.m);
	CU_ASSERT(!strncmp(url, "http://127.0.0.1:", 17));
	/* The same port twice: the second cannot bind. */
	struct metrics_http *again = NULL;
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(
		metrics_http_open(url + 7, page, health, &s, &again, &err),
		SLM_ESYS);
	pthread_t t;
	pthread_create(&t, NULL, serve, &s);
	char body[4096];
	CU_ASSERT_EQUAL(http_get(url, "GET", "/metrics", body, sizeof(body)),
			200);
	CU_ASSERT_STRING_EQUAL(body, "# TYPE slmd_up gauge\nslmd_up 1\n");
	CU_ASSERT_EQUAL(http_get(url, "GET", "/health", body, sizeof(body)),
			503);
	CU_ASSERT_PTR_NOT_NULL(strstr(body, "unavailable"));
	s.health_status = 200;
	CU_ASSERT_EQUAL(http_get(url, "GET", "/health", body, sizeof(body)),
			200);
	CU_ASSERT_EQUAL(http_get(url, "GET", "/", body, sizeof(body)), 404);
	CU_ASSERT_EQUAL(http_get(url, "POST", "/metrics", body, sizeof(body)),
			405);
	__atomic_store_n(&s.stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	metrics_http_close(s.m);
}

SLM_SUITE("metrics", NULL, NULL, {"prometheus text", test_render},
	  {"http", test_http})
