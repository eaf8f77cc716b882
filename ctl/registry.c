/* The process-wide registry of component commands and status sections. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"
#include "ctl/ctl_int.h"

#define NAME_MAX_LEN 32

struct entry {
	struct entry *next;
	char name[NAME_MAX_LEN];
	char help[160];
	ctl_command_fn fn;    /* commands */
	ctl_status_fn status; /* status sections */
	void *ctx;
};

/*
 * Readers (the control thread calling a handler) hold the lock shared for
 * the whole call; register and unregister hold it exclusively, so an
 * unregister waits for a running handler and none starts after it.
 */
static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static struct entry *commands; /* guarded by lock */
static struct entry *sections; /* guarded by lock */

static bool valid_command_name(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len >= NAME_MAX_LEN || name[0] < 'a' || name[0] > 'z')
		return false;
	for (size_t i = 1; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return true;
}

static struct entry *find(struct entry *list, const char *name)
{
	for (; list; list = list->next)
		if (!strcmp(list->name, name))
			return list;
	return NULL;
}

static int add(struct entry **list, const char *name, struct entry *e)
{
	pthread_rwlock_wrlock(&lock);
	int rc = 0;
	if (find(*list, name)) {
		rc = SLM_EBUSY;
		free(e);
	} else {
		e->next = *list;
		*list = e;
	}
	pthread_rwlock_unlock(&lock);
	return rc;
}

static void drop(struct entry **list, const char *name)
{
	struct entry *gone = NULL;
	pthread_rwlock_wrlock(&lock);
	for (struct entry **link = list; *link; link = &(*link)->next) {
		if (!strcmp((*link)->name, name)) {
			gone = *link;
			*link = gone->next;
			break;
		}
	}
	pthread_rwlock_unlock(&lock);
	free(gone);
}

int ctl_register_command(const char *name, ctl_command_fn fn, void *ctx,
			 const char *help)
{
	if (!name || !fn || !valid_command_name(name))
		return SLM_EINVAL;
	if (ctl_builtin_reserved(name))
		return SLM_EBUSY;
	struct entry *e = calloc(1, sizeof(*e));
	if (!e)
		return SLM_ENOMEM;
	snprintf(e->name, sizeof(e->name), "%s", name);
	snprintf(e->help, sizeof(e->help), "%s", help ? help : "");
	e->fn = fn;
	e->ctx = ctx;
	return add(&commands, name, e);
}

void ctl_unregister_command(const char *name)
{
	drop(&commands, name);
}

int ctl_register_status(const char *name, ctl_status_fn fn, void *ctx)
{
	if (!name || !fn || !valid_command_name(name))
		return SLM_EINVAL;
	struct entry *e = calloc(1, sizeof(*e));
	if (!e)
		return SLM_ENOMEM;
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->status = fn;
	e->ctx = ctx;
	return add(&sections, name, e);
}

void ctl_unregister_status(const char *name)
{
	drop(&sections, name);
}

int ctl_registry_call(const struct ctl_request *req, cJSON *result,
		      struct slm_error *err, bool *found)
{
	pthread_rwlock_rdlock(&lock);
	struct entry *e = find(commands, req->cmd);
	int rc = 0;
	*found = e != NULL;
	if (e)
		rc = e->fn(e->ctx, req, result, err);
	pthread_rwlock_unlock(&lock);
	if (rc && err && !err->code)
		slm_error_set(err, rc, "%s: %s", req->cmd, slm_strerror(rc));
	return rc;
}

bool ctl_registry_has(const char *name)
{
	pthread_rwlock_rdlock(&lock);
	bool has = find(commands, name) != NULL;
	pthread_rwlock_unlock(&lock);
	return has;
}

int ctl_registry_status(cJSON *status)
{
	pthread_rwlock_rdlock(&lock);
	int rc = 0;
	for (struct entry *e = sections; e && rc == 0; e = e->next) {
		cJSON *section = cJSON_CreateObject();
		if (!section) {
			rc = SLM_ENOMEM;
			break;
		}
		int r = e->status(e->ctx, section);
		if (r) {
			cJSON_Delete(section);
			section = cJSON_CreateObject();
			if (!section ||
			    !cJSON_AddStringToObject(section, "error",
						     slm_strerror(r))) {
				cJSON_Delete(section);
				rc = SLM_ENOMEM;
				break;
			}
		}
		/* Replace the null placeholder of a known section. */
		if (cJSON_GetObjectItemCaseSensitive(status, e->name))
			cJSON_ReplaceItemInObjectCaseSensitive(status, e->name,
							       section);
		else
			cJSON_AddItemToObject(status, e->name, section);
	}
	pthread_rwlock_unlock(&lock);
	return rc;
}

void ctl_status_make_list(cJSON *section)
{
	/* cJSON keeps an object's and an array's items alike (a child
	 * list); an empty object becomes an empty array by its type. */
	SLM_ASSERT(cJSON_IsObject(section) && !section->child);
	section->type = cJSON_Array;
}

int ctl_registry_help(cJSON *list)
{
	pthread_rwlock_rdlock(&lock);
	int rc = 0;
	for (struct entry *e = commands; e; e = e->next) {
		cJSON *item = cJSON_CreateObject();
		if (!item || !cJSON_AddStringToObject(item, "name", e->name) ||
		    !cJSON_AddStringToObject(item, "help", e->help) ||
		    !cJSON_AddStringToObject(item, "from", "component")) {
			cJSON_Delete(item);
			rc = SLM_ENOMEM;
			break;
		}
		cJSON_AddItemToArray(list, item);
	}
	pthread_rwlock_unlock(&lock);
	return rc;
}

/* ---- helpers for handlers ---------------------------------------------- */

int ctl_param_string(const struct ctl_request *req, const char *name, int pos,
		     const char **out, struct slm_error *err)
{
	*out = NULL;
	const cJSON *v =
		name ? cJSON_GetObjectItemCaseSensitive(req->json, name) : NULL;
	if (v) {
		if (!cJSON_IsString(v))
			return slm_error_set(err, SLM_EINVAL,
					     "field '%s' must be a string",
					     name);
		*out = v->valuestring;
		return 0;
	}
	if (pos >= 0 && req->args) {
		const cJSON *a = cJSON_GetArrayItem(req->args, pos);
		if (a) {
			if (!cJSON_IsString(a))
				return slm_error_set(
					err, SLM_EINVAL,
					"args[%d] must be a string", pos);
			*out = a->valuestring;
		}
	}
	return 0;
}

int ctl_param_bool(const struct ctl_request *req, const char *name, bool *out,
		   struct slm_error *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(req->json, name);
	if (!v)
		return 0;
	if (!cJSON_IsBool(v))
		return slm_error_set(err, SLM_EINVAL,
				     "field '%s' must be true or false", name);
	*out = cJSON_IsTrue(v);
	return 0;
}

int ctl_not_available(const char *what, struct slm_error *err)
{
	return slm_error_set(err, SLM_EUNSUPPORTED,
			     "%s: not available: no serving core in this "
			     "build",
			     what);
}
