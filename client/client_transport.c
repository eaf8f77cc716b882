/*
 * client_transport.c: which transport a URL takes, and loading the
 * plugins that carry the others (client/transport.h).
 *
 * A plugin is looked for, in order, in $SLM_CLIENT_PLUGIN_DIR, in the
 * slmclient/ folder beside the libslmclient.so in use, and in
 * ../lib/slmclient/ from the program's own folder (a program linked with
 * the static library: build/bin/slm finds build/lib/slmclient/, an
 * installed /usr/bin/slm finds /usr/lib/slmclient/), and last in LIBDIR/slmclient
 * as make install was told (a multiarch library folder).  It is opened once
 * per process and never closed: the DPDK inside it cannot start twice.
 */
#include "client/client_int.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "slm/client.h"
#include "slm_features.h"

#define MEMIF_PLUGIN "libslmclient-memif.so"

static pthread_mutex_t plugin_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct slmc_transport *memif;

static void parent_dir(char *path)
{
	char *slash = strrchr(path, '/');
	if (slash)
		*slash = '\0';
	else
		snprintf(path, PATH_MAX, ".");
}

/* The candidate folders, NUL-separated into dirs; returns their count. */
static int plugin_dirs(char dirs[4][PATH_MAX])
{
	int n = 0;
	const char *env = getenv("SLM_CLIENT_PLUGIN_DIR");
	if (env && env[0])
		snprintf(dirs[n++], PATH_MAX, "%s", env);
	char exe[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[len > 0 ? len : 0] = '\0';
	Dl_info info;
	if (dladdr((void *)slmc_transport_for, &info) && info.dli_fname &&
	    info.dli_fname[0] && strcmp(info.dli_fname, exe)) {
		char lib[PATH_MAX];
		if (realpath(info.dli_fname, lib)) {
			parent_dir(lib);
			snprintf(dirs[n++], PATH_MAX, "%.4000s/slmclient", lib);
		}
	}
	if (exe[0]) {
		parent_dir(exe);
		snprintf(dirs[n++], PATH_MAX, "%.4000s/../lib/slmclient", exe);
	}
	snprintf(dirs[n++], PATH_MAX, "%s/slmclient", SLM_LIBDIR);
	return n;
}

static const struct slmc_transport *load_memif(char *msg, size_t size)
{
	pthread_mutex_lock(&plugin_lock);
	const struct slmc_transport *t = memif;
	if (t) {
		pthread_mutex_unlock(&plugin_lock);
		return t;
	}
	char dirs[4][PATH_MAX];
	int n = plugin_dirs(dirs);
	char tried[1024] = "";
	size_t tl = 0;
	for (int i = 0; i < n && !t; i++) {
		char path[PATH_MAX + 64];
		snprintf(path, sizeof(path), "%s/%s", dirs[i], MEMIF_PLUGIN);
		if (access(path, R_OK) != 0) {
			tl += (size_t)snprintf(
				tried + SLM_MIN(tl, sizeof(tried)),
				tl < sizeof(tried) ? sizeof(tried) - tl : 0,
				"%s%s", tl ? ", " : "", dirs[i]);
			continue;
		}
		void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
		if (!h) {
			if (msg)
				snprintf(msg, size, "%s", dlerror());
			pthread_mutex_unlock(&plugin_lock);
			return NULL;
		}
		slmc_plugin_fn fn =
			(slmc_plugin_fn)(uintptr_t)dlsym(h, SLMC_PLUGIN_SYMBOL);
		t = fn ? fn() : NULL;
		if (!t || t->abi != SLMC_TRANSPORT_ABI) {
			if (msg)
				snprintf(msg, size,
					 "%s: not a transport plugin of this "
					 "library (ABI %u, want %u)",
					 path, t ? t->abi : 0,
					 SLMC_TRANSPORT_ABI);
			dlclose(h);
			pthread_mutex_unlock(&plugin_lock);
			return NULL;
		}
		/* Kept for the life of the process. */
	}
	memif = t;
	pthread_mutex_unlock(&plugin_lock);
	if (!t && msg)
		snprintf(msg, size,
			 "memif:// needs %s (built when DPDK is present); "
			 "not found in %s (set SLM_CLIENT_PLUGIN_DIR)",
			 MEMIF_PLUGIN, tried[0] ? tried : "any folder");
	return t;
}

const struct slmc_transport *slmc_transport_for(const char *url, int *code,
						char *msg, size_t size)
{
	const char *sep = strstr(url, "://");
	size_t n = sep ? (size_t)(sep - url) : 0;
	if (n == 3 && !strncmp(url, "udp", 3))
		return &slmc_transport_udp;
	if (n == 5 && !strncmp(url, "memif", 5)) {
		const struct slmc_transport *t = load_memif(msg, size);
		if (!t)
			*code = SLM_CLIENT_EUNSUPPORTED;
		return t;
	}
	if (!sep) {
		/* Let the URL parser say what is wrong with it. */
		return &slmc_transport_udp;
	}
	*code = SLM_CLIENT_EUNSUPPORTED;
	if (msg)
		snprintf(msg, size,
			 "'%s': transport '%.*s' not supported (udp://, "
			 "memif://)",
			 url, (int)SLM_MIN(n, 32), url);
	return NULL;
}
