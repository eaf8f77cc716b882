/*
 * dpdk_eal.c: starting DPDK's EAL for slmd.  See dpdk.h.
 *
 * The argument vector is built here: a file prefix of our own, no
 * telemetry socket, the main lcore mapped onto the CPUs the calling
 * thread may already use (so EAL does not pin slmd's main thread), PCI
 * scanning only for a PCI port, memory options unless dpdk.eal_args has
 * its own, then dpdk.eal_args.  EAL's log goes through a stream whose
 * lines become slmd log lines (component "dpdk"), at levels mapped from
 * EAL's, and the last error line is kept for the start-up error message.
 */
#include "dataplane/dpdk_int.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_log.h>

#include "common/log.h"

#define MAX_ARGS 64

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_line[1024];
static size_t log_len;
static char last_error[512];
static FILE *log_stream;
static int eal_state; /* 0 never, 1 running, 2 cleaned up */

/* ---- EAL's log into ours ----------------------------------------------- */

static enum slm_log_level level_of(int level)
{
	unsigned rte_level = level < 0 ? RTE_LOG_DEBUG : (unsigned)level;
	if (rte_level <= RTE_LOG_ERR)
		return SLM_LOG_ERROR;
	if (rte_level == RTE_LOG_WARNING)
		return SLM_LOG_WARN;
	if (rte_level == RTE_LOG_NOTICE)
		return SLM_LOG_INFO;
	if (rte_level == RTE_LOG_INFO)
		return SLM_LOG_DEBUG;
	return SLM_LOG_TRACE;
}

/* EAL's threshold for our level: nothing below what we would print. */
static uint32_t rte_level_for(enum slm_log_level l)
{
	switch (l) {
	case SLM_LOG_ERROR:
		return RTE_LOG_ERR;
	case SLM_LOG_WARN:
		return RTE_LOG_WARNING;
	case SLM_LOG_INFO:
		return RTE_LOG_NOTICE;
	case SLM_LOG_DEBUG:
		return RTE_LOG_INFO;
	default:
		return RTE_LOG_DEBUG;
	}
}

/*
 * Messages DPDK logs as warnings or errors that are expected in the way
 * slmd runs it (no multi-process channel with --no-shconf/--in-memory;
 * net_tap's flow support, which slmd does not use, on kernels without
 * the multiq qdisc; a huge page size of which none are reserved while
 * another size has some): they go to the debug level.
 */
static const char *const benign[] = {
	"hugepages reported on node",
	"Failed to register mp action callback",
	"Failed to send start req to secondary",
	"Specified qdisc kind is unknown",
	"Could not add multiq qdisc",
	"failed to create multiq qdisc",
	"Disabling rte flow support",
};

static bool is_benign(const char *line)
{
	for (size_t i = 0; i < SLM_ARRAY_LEN(benign); i++)
		if (strstr(line, benign[i]))
			return true;
	return false;
}

static void emit_line(int rte_level)
{
	while (log_len &&
	       (log_line[log_len - 1] == '\n' || log_line[log_len - 1] == ' '))
		log_len--;
	log_line[log_len] = '\0';
	if (log_len) {
		enum slm_log_level l = level_of(rte_level);
		if (l < SLM_LOG_DEBUG && is_benign(log_line))
			l = SLM_LOG_DEBUG;
		if (l == SLM_LOG_ERROR)
			snprintf(last_error, sizeof(last_error), "%s",
				 log_line);
		slm_log(l, "dpdk", "%s", log_line);
	}
	log_len = 0;
}

/* The stream's write: split into lines (EAL flushes after each message;
 * a message without a final newline is a line too). */
static ssize_t log_write(void *cookie, const char *buf, size_t size)
{
	(void)cookie;
	int level = rte_log_cur_msg_loglevel();
	pthread_mutex_lock(&log_lock);
	for (size_t i = 0; i < size; i++) {
		if (buf[i] == '\n') {
			emit_line(level);
			continue;
		}
		if (log_len < sizeof(log_line) - 1)
			log_line[log_len++] = buf[i];
	}
	if (log_len)
		emit_line(level);
	pthread_mutex_unlock(&log_lock);
	return (ssize_t)size;
}

static int open_log(void)
{
	if (log_stream)
		return 0;
	cookie_io_functions_t io = {.write = log_write};
	log_stream = fopencookie(NULL, "w", io);
	if (!log_stream)
		return -1;
	/* Whole messages per write: EAL flushes after each. */
	setvbuf(log_stream, NULL, _IOFBF, 4096);
	return rte_openlog_stream(log_stream);
}

/* ---- arguments --------------------------------------------------------- */

bool dpdk_is_pci(const char *s)
{
	/* [DDDD:]BB:DD.F in hex */
	unsigned dom, bus, dev, fn;
	char tail;
	if (sscanf(s, "%x:%x:%x.%x%c", &dom, &bus, &dev, &fn, &tail) == 4)
		return true;
	return sscanf(s, "%x:%x.%x%c", &bus, &dev, &fn, &tail) == 3 &&
	       strchr(s, '.') && !strchr(s, ',');
}

static bool has_opt(char *const *argv, int argc, const char *const *opts)
{
	for (int i = 0; i < argc; i++)
		for (const char *const *o = opts; *o; o++) {
			size_t n = strlen(*o);
			/* A short option may carry its value: -m512. */
			bool short_opt = n == 2 && (*o)[1] != '-';
			if (!strncmp(argv[i], *o, n) &&
			    (short_opt || argv[i][n] == '\0' ||
			     argv[i][n] == '='))
				return true;
		}
	return false;
}

/* Free hugepages of any size, from /sys. */
static uint64_t free_hugepages(void)
{
	DIR *d = opendir("/sys/kernel/mm/hugepages");
	if (!d)
		return 0;
	uint64_t total = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "hugepages-", 10))
			continue;
		char path[320];
		snprintf(path, sizeof(path),
			 "/sys/kernel/mm/hugepages/%s/free_hugepages",
			 e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		unsigned long long v = 0;
		if (fscanf(f, "%llu", &v) == 1)
			total += v;
		fclose(f);
	}
	closedir(d);
	return total;
}

/* "0@(0,1,5)": EAL's main lcore on every CPU we may use now. */
static int lcores_arg(char *buf, size_t size)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set))
		return -1;
	size_t len = (size_t)snprintf(buf, size, "--lcores=0@(");
	bool first = true;
	for (int cpu = 0; cpu < CPU_SETSIZE && len < size; cpu++) {
		if (!CPU_ISSET(cpu, &set))
			continue;
		len += (size_t)snprintf(buf + len, size - len, "%s%d",
					first ? "" : ",", cpu);
		first = false;
	}
	if (len + 2 >= size)
		return -1;
	snprintf(buf + len, size - len, ")");
	return 0;
}

int dpdk_eal_start(const struct dpdk_eal_params *p, char *mode,
		   size_t mode_size, struct slm_error *err)
{
	if (eal_state)
		return slm_error_set(err, SLM_ESTATE,
				     "DPDK's EAL was started before in this "
				     "process; it can be started only once");
	static const char *const mem_opts[] = {
		"--no-huge",	  "--in-memory", "-m",
		"--socket-mem",	  "--huge-dir",	 "--legacy-mem",
		"--socket-limit", NULL};
	static const char *const pci_opts[] = {"-a",	  "--allow",  "-b",
					       "--block", "--no-pci", NULL};
	static const char *const log_opts[] = {"--log-level", NULL};

	char *user = strdup(p->eal_args ? p->eal_args : "");
	char prefix[64], lcores[1024], mem[64], allow[300], level[64];
	char *argv[MAX_ARGS + 16];
	int argc = 0;
	if (!user)
		return slm_error_set(err, SLM_ENOMEM, "EAL arguments");
	char *user_argv[MAX_ARGS];
	int user_argc = 0;
	for (char *save = NULL, *t = strtok_r(user, " \t\n", &save); t;
	     t = strtok_r(NULL, " \t\n", &save)) {
		if (user_argc == MAX_ARGS) {
			free(user);
			return slm_error_set(err, SLM_ECONFIG,
					     "dpdk.eal_args: more than %d "
					     "arguments",
					     MAX_ARGS);
		}
		user_argv[user_argc++] = t;
	}
	argv[argc++] = "slmd";
	snprintf(prefix, sizeof(prefix), "--file-prefix=slmd-%d",
		 (int)getpid());
	argv[argc++] = prefix;
	argv[argc++] = "--no-telemetry";
	if (lcores_arg(lcores, sizeof(lcores)) == 0)
		argv[argc++] = lcores;
	bool pci = p->port && dpdk_is_pci(p->port);
	if (!has_opt(user_argv, user_argc, pci_opts)) {
		if (pci) {
			snprintf(allow, sizeof(allow), "--allow=%s", p->port);
			argv[argc++] = allow;
		} else {
			argv[argc++] = "--no-pci";
		}
	}
	if (!has_opt(user_argv, user_argc, mem_opts)) {
		uint64_t free_pages = free_hugepages();
		bool huge = p->hugepages == 1 ||
			    (p->hugepages == 0 && free_pages > 0);
		if (huge && free_pages == 0) {
			free(user);
			return slm_error_set(
				err, SLM_ECONFIG,
				"dpdk.hugepages = yes, but no huge pages are "
				"free (reserve some: echo 512 > "
				"/proc/sys/vm/nr_hugepages; "
				"docs/operations.md)");
		}
		if (huge) {
			argv[argc++] = "--in-memory";
			snprintf(mode, mode_size,
				 "huge pages (--in-memory, %llu free)",
				 (unsigned long long)free_pages);
		} else {
			unsigned long long mb = p->memory >> 20;
			snprintf(mem, sizeof(mem), "-m%llu", mb);
			argv[argc++] = "--no-huge";
			argv[argc++] = mem;
			argv[argc++] = "--no-shconf";
			snprintf(mode, mode_size, "no huge pages (%llu MiB)",
				 mb);
		}
	} else {
		snprintf(mode, mode_size, "memory as dpdk.eal_args says");
	}
	if (!has_opt(user_argv, user_argc, log_opts)) {
		snprintf(level, sizeof(level), "--log-level=%u",
			 rte_level_for(slm_log_get_level()));
		argv[argc++] = level;
	}
	for (int i = 0; i < user_argc; i++)
		argv[argc++] = user_argv[i];
	argv[argc] = NULL;

	char line[1024];
	size_t len = 0;
	for (int i = 0; i < argc && len < sizeof(line); i++)
		len += (size_t)snprintf(line + len, sizeof(line) - len, "%s%s",
					i ? " " : "", argv[i]);
	SLM_INFO("dpdk", "EAL arguments: %s", line);

	if (open_log() != 0) {
		free(user);
		return slm_error_set(err, SLM_ESYS, "EAL log stream");
	}
	cpu_set_t before;
	int have_before = sched_getaffinity(0, sizeof(before), &before) == 0;
	last_error[0] = '\0';
	/* rte_eal_init may reorder argv (getopt): give it a copy. */
	char *copy[MAX_ARGS + 16];
	memcpy(copy, argv, sizeof(char *) * (size_t)(argc + 1));
	int rc = rte_eal_init(argc, copy);
	int e = rte_errno;
	if (have_before)
		sched_setaffinity(0, sizeof(before), &before);
	free(user);
	if (rc < 0) {
		/* EAL refuses a second init even after a failed one. */
		eal_state = 2;
		return slm_error_set(
			err, e == EALREADY ? SLM_ESTATE : SLM_ECONFIG,
			"DPDK EAL did not start: %s%s%s", rte_strerror(e),
			last_error[0] ? ": " : "", last_error);
	}
	eal_state = 1;
	/* Nothing is kept in the runtime folder with --no-shconf or
	 * --in-memory: remove it now, so a crash leaves nothing behind. */
	const char *dir = rte_eal_get_runtime_dir();
	if (dir && dir[0])
		rmdir(dir);
	return 0;
}

void dpdk_eal_stop(void)
{
	if (eal_state != 1)
		return;
	rte_eal_cleanup();
	eal_state = 2;
}
