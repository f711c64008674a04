/*
 * lease.c: the cluster-wide lock of lease.h, in the manner of client-go's leader election
 * (tools/leaderelection/resourcelock/leaselock.go): create, or read and take over an expired Lease with a
 * PUT guarded by its resourceVersion, or wait while a live one is held; delete it with preconditions after
 * acting. Each acquisition has its own holderIdentity (hostname, a per-process nonce and a sequence number),
 * so two workers of one process, or a restarted process with the same pod name and pid, are distinct holders.
 * Times from the API are read as UTC RFC 3339 (expiry.h's parser); the expiry compares the holder's renewTime
 * with this host's clock, so the clocks of the replicas' nodes must agree to within a few seconds.
 */
#include "playbookd/lease.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "playbookd/expiry.h"
#include "playbookd/kube.h"
#include "playbookd/log.h"

#define LEASE_DURATION_MAX_S 86400 /* a leaseDurationSeconds read from the API beyond this is read as this */

static pthread_once_t identity_once = PTHREAD_ONCE_INIT;
static char host_name[64];
static unsigned long long process_nonce;
static atomic_ulong acquisitions;

static void identity_init(void)
{
    if (gethostname(host_name, sizeof(host_name)) != 0 || host_name[0] == 0)
        snprintf(host_name, sizeof(host_name), "playbookd");
    host_name[sizeof(host_name) - 1] = 0;
    if (getrandom(&process_nonce, sizeof(process_nonce), 0) != (ssize_t)sizeof(process_nonce)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        process_nonce = (unsigned long long)ts.tv_nsec ^ ((unsigned long long)ts.tv_sec << 20) ^ (unsigned)getpid();
    }
}

/* HOST_NONCE_SEQ: unique to this acquisition across processes and workers. */
static void holder_identity(char *out, size_t size)
{
    pthread_once(&identity_once, identity_init);
    unsigned long seq = atomic_fetch_add(&acquisitions, 1) + 1;
    snprintf(out, size, "%s_%016llx_%lu", host_name, process_nonce, seq);
}

static double monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static const char *meta_string(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const cJSON *spec_item(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "spec"), key);
}

/* A count from the Lease's spec, clamped to [0, max]; 0 when absent. */
static long spec_number(const cJSON *obj, const char *key, long max)
{
    const cJSON *v = spec_item(obj, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0)
        return 0;
    return v->valuedouble > (double)max ? max : (long)v->valuedouble;
}

/*
 * The Lease as this acquisition writes it: a create (resource_version NULL) or a takeover PUT (with the
 * resourceVersion read and the holder's transitions counted on). NULL when out of memory.
 */
static char *lease_body(const struct lease *l, const char *resource_version, long transitions)
{
    char now[40];
    kube_micro_time(now, sizeof(now));
    cJSON *obj = cJSON_CreateObject(), *meta, *spec;
    cJSON_AddStringToObject(obj, "apiVersion", "coordination.k8s.io/v1");
    cJSON_AddStringToObject(obj, "kind", "Lease");
    meta = cJSON_AddObjectToObject(obj, "metadata");
    cJSON_AddStringToObject(meta, "name", l->name);
    cJSON_AddStringToObject(meta, "namespace", l->ns);
    if (resource_version != NULL)
        cJSON_AddStringToObject(meta, "resourceVersion", resource_version);
    spec = cJSON_AddObjectToObject(obj, "spec");
    cJSON_AddStringToObject(spec, "holderIdentity", l->holder);
    cJSON_AddNumberToObject(spec, "leaseDurationSeconds", (double)l->duration_s);
    cJSON_AddStringToObject(spec, "acquireTime", now);
    cJSON_AddStringToObject(spec, "renewTime", now);
    if (transitions > 0)
        cJSON_AddNumberToObject(spec, "leaseTransitions", (double)transitions);
    char *json = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    return json;
}

/* The answer to a create or a takeover: the Lease as stored is held (its uid and resourceVersion kept). */
static enum outcome held(struct lease *l, struct kube_response *resp, struct action_result *res)
{
    const cJSON *obj = kube_response_json(resp);
    const char *uid = meta_string(obj, "uid"), *version = meta_string(obj, "resourceVersion");
    if (uid == NULL || strlen(uid) >= sizeof(l->uid) || (version && strlen(version) >= sizeof(l->resource_version)))
        return action_fail(res, true, "lease %s/%s: the answer has no usable uid or resourceVersion", l->ns, l->name);
    snprintf(l->uid, sizeof(l->uid), "%s", uid);
    snprintf(l->resource_version, sizeof(l->resource_version), "%s", version ? version : "");
    l->held = true;
    log_kv(LOG_DEBUG, "lease acquired", "lease", l->name, "namespace", l->ns, "holder", l->holder, NULL);
    return OUTCOME_OK;
}

/* True when the Lease read has expired: no renewTime, or renewTime + leaseDurationSeconds is past. */
static bool expired(const cJSON *obj)
{
    const cJSON *renew = spec_item(obj, "renewTime");
    time_t renewed;
    if (!cJSON_IsString(renew) || expiry_time_parse(renew->valuestring, &renewed) != 0)
        return true;
    long duration = spec_number(obj, "leaseDurationSeconds", LEASE_DURATION_MAX_S);
    return renewed + duration + 1 < time(NULL); /* + 1: renewTime's fraction of a second, read as whole */
}

enum try_result { TRY_DONE, TRY_AGAIN };

/* The PUT that takes over the expired Lease read (obj): held, or TRY_AGAIN when another was first (409). */
static enum try_result put_over(struct kube *k, struct lease *l, const char *path, const cJSON *obj, enum outcome *o,
                                struct action_result *res)
{
    struct kube_response put;
    const cJSON *from = spec_item(obj, "holderIdentity");
    char *body = lease_body(l, meta_string(obj, "resourceVersion"), spec_number(obj, "leaseTransitions", 1000000) + 1);
    if (body == NULL) {
        *o = action_fail(res, true, "out of memory");
        return TRY_DONE;
    }
    kube_send(k, "PUT", path, "application/json", body, l->dry_run, &put);
    enum try_result r = put.status == 409 ? TRY_AGAIN : TRY_DONE;
    if (put.status == 200 || put.status == 201) {
        log_kv(LOG_INFO, "expired lease taken over", "lease", l->name, "namespace", l->ns, "from",
               cJSON_IsString(from) ? from->valuestring : "", NULL);
        *o = held(l, &put, res);
    } else if (put.status != 409) {
        *o = playbook_kube_failure(&put, "update lease", res);
    }
    kube_response_free(&put);
    return r;
}

/* The Lease exists: take it over if it expired, else TRY_AGAIN while its holder's is live (or it was deleted
 * since the create: 404). */
static enum try_result take_over(struct kube *k, struct lease *l, const char *path, enum outcome *o,
                                 struct action_result *res)
{
    struct kube_response resp;
    enum try_result r = TRY_AGAIN;
    *o = playbook_kube_get(k, path, "get lease", &resp, res);
    if (resp.status == 404) {
        *o = OUTCOME_OK;
        res->reason[0] = 0;
        res->transient = false;
    } else if (*o != OUTCOME_OK) {
        r = TRY_DONE;
    } else if (expired(resp.json) && meta_string(resp.json, "resourceVersion") != NULL) {
        r = put_over(k, l, path, resp.json, o, res);
    }
    kube_response_free(&resp);
    return r;
}

/* One try: create; on 409 AlreadyExists, take_over. */
static enum try_result try_once(struct kube *k, struct lease *l, enum outcome *o, struct action_result *res)
{
    char path[512];
    struct kube_response resp;
    enum try_result r = TRY_DONE;
    char *body = lease_body(l, NULL, 0);
    if (body == NULL) {
        *o = action_fail(res, true, "out of memory");
        return TRY_DONE;
    }
    snprintf(path, sizeof(path), "/apis/coordination.k8s.io/v1/namespaces/%s/leases", l->ns);
    kube_send(k, "POST", path, "application/json", body, l->dry_run, &resp);
    if (resp.status == 201 || resp.status == 200) {
        *o = held(l, &resp, res);
    } else if (resp.status == 409) {
        snprintf(path, sizeof(path), "/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s", l->ns, l->name);
        r = take_over(k, l, path, o, res);
    } else {
        *o = playbook_kube_failure(&resp, "create lease", res);
    }
    kube_response_free(&resp);
    return r;
}

enum outcome lease_acquire(struct kube *k, const char *ns, const char *name, const char *what, long wait_ms,
                           long duration_s, bool dry_run, struct lease *l, struct action_result *res)
{
    memset(l, 0, sizeof(*l));
    l->dry_run = dry_run;
    l->duration_s = duration_s > 0 ? duration_s : 1;
    snprintf(l->ns, sizeof(l->ns), "%s", ns);
    snprintf(l->name, sizeof(l->name), "%s", name);
    holder_identity(l->holder, sizeof(l->holder));
    double deadline = monotonic_s() + (double)wait_ms / 1000.0;
    unsigned long tries = 0;
    for (;;) {
        enum outcome o = OUTCOME_OK;
        tries++;
        l->acquired_s = monotonic_s(); /* before the request: its time counts against the Lease */
        if (try_once(k, l, &o, res) == TRY_DONE)
            return o;
        double left_ms = (deadline - monotonic_s()) * 1000.0;
        if (left_ms <= 0) {
            char tries_text[24];
            snprintf(tries_text, sizeof(tries_text), "%lu", tries);
            log_kv(LOG_INFO, "lease busy: gave up waiting", "lease", l->name, "namespace", l->ns, "tries", tries_text,
                   NULL);
            return action_fail(res, true, "another playbookd replica is acting on %s (lease %s/%s)", what, l->ns,
                               l->name);
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long nap = LEASE_SLEEP_MIN_MS + (long)((unsigned long)(ts.tv_nsec / 1000) % LEASE_SLEEP_SPREAD_MS);
        sleep_ms(nap < left_ms ? nap : (long)left_ms + 1);
    }
}

/* DeleteOptions {dryRun, preconditions: {uid, resourceVersion}} of the Lease as held. */
static char *release_options(const struct lease *l)
{
    cJSON *opts = kube_delete_options(l->dry_run, -1, l->uid);
    cJSON *pre = cJSON_GetObjectItemCaseSensitive(opts, "preconditions");
    if (pre != NULL && l->resource_version[0])
        cJSON_AddStringToObject(pre, "resourceVersion", l->resource_version);
    cJSON_AddStringToObject(opts, "apiVersion", "v1");
    cJSON_AddStringToObject(opts, "kind", "DeleteOptions");
    char *json = cJSON_PrintUnformatted(opts);
    cJSON_Delete(opts);
    return json;
}

void lease_release(struct kube *k, struct lease *l)
{
    if (!l->held)
        return;
    l->held = false;
    char path[512], *body = release_options(l);
    struct kube_response resp;
    if (body == NULL) {
        log_kv(LOG_WARN, "lease not released: out of memory (it expires)", "lease", l->name, NULL);
        return;
    }
    snprintf(path, sizeof(path), "/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s", l->ns, l->name);
    kube_send(k, "DELETE", path, "application/json", body, l->dry_run, &resp);
    char status[16];
    snprintf(status, sizeof(status), "%ld", resp.status);
    if (resp.status == 200 || resp.status == 202)
        log_kv(LOG_DEBUG, "lease released", "lease", l->name, "namespace", l->ns, NULL);
    else if (resp.status == 404 || resp.status == 409) /* gone, or taken over after it expired */
        log_kv(LOG_DEBUG, "lease already released or taken over", "lease", l->name, "namespace", l->ns, "status",
               status, NULL);
    else
        log_kv(LOG_WARN, "lease not released (it expires after leaseDurationSeconds)", "lease", l->name, "namespace",
               l->ns, "status", status, "error", resp.message, NULL);
    kube_response_free(&resp);
}

long lease_left_ms(const struct lease *l)
{
    if (!l->held)
        return 0;
    double left = (double)l->duration_s * 1000.0 - (monotonic_s() - l->acquired_s) * 1000.0;
    return left > 0 ? (long)left : 0;
}
