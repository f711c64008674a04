/*
 * nats.c: NATS with cnats. A link is one connection, reconnecting forever, shared by successive
 * subscription sets (one per loaded config). Every subscription is in one queue group, the configured
 * one or one private to this process: NATS then delivers each message once to the group however many of
 * its patterns match, and the receiving subscription dispatches it to the playbooks of all of them.
 */
#include "playbookd/nats.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "playbookd/log.h"
#include "playbookd/metrics.h"
#include "playbookd/text.h"

struct nats_link {
    natsOptions *opts;
    natsConnection *conn;
    char queue[96]; /* the queue group of every subscription */
};

struct slot {
    struct nats_subscriptions *set;
    natsSubscription *sub;
};

struct nats_subscriptions {
    struct dispatcher *dispatcher;
    struct slot *slots;
    size_t n_slots;
    atomic_bool closing;
    pthread_mutex_t lock;
    pthread_cond_t done; /* signalled as subscriptions complete */
    size_t completed;
};

static int nats_error(struct error *err, const char *what, natsStatus s)
{
    const char *detail = nats_GetLastError(NULL);
    return error_set(err, "nats: %s: %s%s%s", what, natsStatus_GetText(s), detail && *detail ? ": " : "",
                     detail ? detail : "");
}

static void log_connection(natsConnection *nc, const char *event, enum log_level level)
{
    char url[256] = "", shown[256];
    if (natsConnection_GetConnectedUrl(nc, url, sizeof(url)) != NATS_OK)
        url[0] = 0;
    log_kv(level, event, "url", url[0] ? text_redact_url(url, shown, sizeof(shown)) : NULL, NULL);
}

static void on_connected(natsConnection *nc, void *closure)
{
    (void)closure;
    metrics_nats_connected(true);
    log_connection(nc, "nats connected", LOG_INFO);
    log_kv(LOG_INFO, "ready", NULL);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)nc, (void)closure;
    metrics_nats_connected(false);
    log_kv(LOG_WARN, "nats disconnected", NULL);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    (void)closure;
    metrics_nats_reconnected();
    metrics_nats_connected(true);
    log_connection(nc, "nats reconnected", LOG_INFO);
}

static void on_closed(natsConnection *nc, void *closure)
{
    (void)nc, (void)closure;
    metrics_nats_connected(false);
    log_kv(LOG_INFO, "nats connection closed", NULL);
}

static void on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    (void)nc, (void)closure;
    const char *subject = sub ? natsSubscription_GetSubject(sub) : NULL;
    log_kv(LOG_ERROR, "nats error", "pattern", subject, "error", natsStatus_GetText(err), "hint",
           err == NATS_SLOW_CONSUMER ? "alerts were dropped: playbooks are slower than the alert rate" : NULL, NULL);
}

static natsStatus set_auth(natsOptions *o, const struct config_nats *n)
{
    natsStatus s = NATS_OK;
    if (n->token != NULL)
        s = natsOptions_SetToken(o, n->token);
    if (s == NATS_OK && n->user != NULL)
        s = natsOptions_SetUserInfo(o, n->user, n->password);
    if (s == NATS_OK && n->credentials != NULL)
        s = natsOptions_SetUserCredentialsFromFiles(o, n->credentials, NULL);
    return s;
}

static natsStatus set_tls(natsOptions *o, const struct config_nats *n)
{
    bool secure = n->tls_ca != NULL || n->tls_cert != NULL;
    for (size_t i = 0; i < n->servers.n; i++)
        secure = secure || strncmp(n->servers.items[i], "tls://", 6) == 0;
    natsStatus s = secure ? natsOptions_SetSecure(o, true) : NATS_OK;
    if (s == NATS_OK && n->tls_ca != NULL)
        s = natsOptions_LoadCATrustedCertificates(o, n->tls_ca);
    if (s == NATS_OK && n->tls_cert != NULL)
        s = natsOptions_LoadCertificatesChain(o, n->tls_cert, n->tls_key);
    return s;
}

static natsStatus build_options(const struct config_nats *n, const char *name, natsOptions **out)
{
    natsOptions *o = NULL;
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK)
        s = natsOptions_SetServers(o, (const char **)n->servers.items, (int)n->servers.n);
    if (s == NATS_OK)
        s = natsOptions_SetName(o, name);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(o, -1); /* forever */
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(o, 1000);
    if (s == NATS_OK)
        s = natsOptions_SetRetryOnFailedConnect(o, true, on_connected, NULL);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(o, on_disconnected, NULL);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(o, on_reconnected, NULL);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(o, on_closed, NULL);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(o, on_async_error, NULL);
    if (s == NATS_OK)
        s = set_auth(o, n);
    if (s == NATS_OK)
        s = set_tls(o, n);
    if (s != NATS_OK)
        natsOptions_Destroy(o);
    *out = s == NATS_OK ? o : NULL;
    return s;
}

/* The configured queue group, or one no other process shares. */
static void choose_queue(struct nats_link *l, const struct config_nats *n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (n->queue_group != NULL)
        snprintf(l->queue, sizeof(l->queue), "%s", n->queue_group);
    else
        snprintf(l->queue, sizeof(l->queue), "_playbookd_%ld_%lx", (long)getpid(), (unsigned long)ts.tv_nsec);
}

int nats_link_create(struct nats_link **out, const struct config_nats *n, const char *name, struct error *err)
{
    struct nats_link *l = calloc(1, sizeof(*l));
    *out = NULL;
    if (l == NULL)
        return error_set(err, "out of memory");
    choose_queue(l, n);
    natsStatus s = build_options(n, name, &l->opts);
    if (s != NATS_OK) {
        free(l);
        return nats_error(err, "options", s);
    }
    s = natsConnection_Connect(&l->conn, l->opts);
    if (s == NATS_NOT_YET_CONNECTED) {
        log_kv(LOG_WARN, "nats not reachable yet, retrying in the background", NULL);
    } else if (s != NATS_OK) {
        nats_link_destroy(l, 0);
        return nats_error(err, "connect", s);
    } else {
        metrics_nats_connected(true);
        log_connection(l->conn, "nats connected", LOG_INFO);
    }
    *out = l;
    return 0;
}

/* What is buffered goes out: after a reconnect if need be, within timeout_ms; what cannot is logged. */
static void flush_buffered(struct nats_link *l, long timeout_ms)
{
    for (long waited = 0; waited < timeout_ms && !nats_link_connected(l) && natsConnection_Buffered(l->conn) > 0;
         waited += 100)
        usleep(100 * 1000);
    if (nats_link_connected(l))
        natsConnection_FlushTimeout(l->conn, timeout_ms);
    int left = natsConnection_Buffered(l->conn);
    if (left > 0) {
        char bytes[16];
        snprintf(bytes, sizeof(bytes), "%d", left);
        log_kv(LOG_ERROR, "NATS unreachable at exit: buffered messages were not delivered", "bytes", bytes, NULL);
    }
}

void nats_link_destroy(struct nats_link *l, long timeout_ms)
{
    if (l == NULL)
        return;
    if (l->conn != NULL && timeout_ms > 0)
        flush_buffered(l, timeout_ms);
    if (l->conn != NULL)
        natsConnection_Close(l->conn);
    natsConnection_Destroy(l->conn);
    natsOptions_Destroy(l->opts);
    free(l);
}

bool nats_link_connected(struct nats_link *l)
{
    return l->conn != NULL && natsConnection_Status(l->conn) == NATS_CONN_STATUS_CONNECTED;
}

natsConnection *nats_link_connection(struct nats_link *l)
{
    return l->conn;
}

static void on_message(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc, (void)sub;
    struct slot *slot = closure;
    if (!atomic_load(&slot->set->closing))
        dispatch_message(slot->set->dispatcher, natsMsg_GetSubject(msg), natsMsg_GetData(msg),
                         (size_t)natsMsg_GetDataLength(msg), "nats");
    natsMsg_Destroy(msg);
}

/* cnats calls this once the subscription is closed and its handler has returned for the last time. */
static void on_complete(void *closure)
{
    struct nats_subscriptions *set = ((struct slot *)closure)->set;
    pthread_mutex_lock(&set->lock);
    set->completed++;
    pthread_cond_broadcast(&set->done);
    pthread_mutex_unlock(&set->lock);
}

static natsStatus subscribe_one(struct nats_link *l, struct slot *slot, const char *pattern)
{
    natsStatus s = natsConnection_QueueSubscribe(&slot->sub, l->conn, pattern, l->queue, on_message, slot);
    if (s == NATS_OK)
        s = natsSubscription_SetOnCompleteCB(slot->sub, on_complete, slot);
    if (s != NATS_OK && slot->sub != NULL) { /* no completion will come: close it now, before any message */
        natsSubscription_Unsubscribe(slot->sub);
        natsSubscription_Destroy(slot->sub);
        slot->sub = NULL;
    }
    if (s == NATS_OK)
        log_kv(LOG_INFO, "subscribed", "pattern", pattern, "queue_group", l->queue, NULL);
    return s;
}

int nats_subscribe(struct nats_subscriptions **out, struct nats_link *l, const struct config *cfg, struct dispatcher *d,
                   struct error *err)
{
    struct nats_subscriptions *set = calloc(1, sizeof(*set));
    *out = NULL;
    if (set == NULL || (set->slots = calloc(cfg->n_topics, sizeof(*set->slots))) == NULL) {
        free(set);
        return error_set(err, "out of memory");
    }
    set->dispatcher = d;
    pthread_mutex_init(&set->lock, NULL);
    pthread_cond_init(&set->done, NULL);
    natsStatus s = NATS_OK;
    for (size_t i = 0; i < cfg->n_topics && s == NATS_OK; i++, set->n_slots++) {
        set->slots[i].set = set;
        s = subscribe_one(l, &set->slots[i], cfg->topics[i].pattern);
    }
    if (s == NATS_OK && nats_link_connected(l))
        s = natsConnection_FlushTimeout(l->conn, 5000);
    if (s != NATS_OK) {
        nats_error(err, "subscribe", s);
        nats_unsubscribe(set, 0);
        return -1;
    }
    *out = set;
    return 0;
}

static void wait_for(struct nats_subscriptions *set, size_t count, const struct timespec *deadline)
{
    pthread_mutex_lock(&set->lock);
    while (set->completed < count)
        if (deadline ? pthread_cond_timedwait(&set->done, &set->lock, deadline) != 0
                     : pthread_cond_wait(&set->done, &set->lock) != 0)
            break;
    pthread_mutex_unlock(&set->lock);
}

/* Drains: no new messages, those received still handled; returns when done or at the deadline. */
static size_t drain(struct nats_subscriptions *set, long timeout_ms)
{
    struct timespec deadline;
    size_t draining = 0;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L)
        deadline.tv_sec++, deadline.tv_nsec -= 1000000000L;
    /* cnats gets a later deadline than ours, so that ours decides and counts what is dropped. */
    for (size_t i = 0; i < set->n_slots; i++)
        draining +=
            set->slots[i].sub && natsSubscription_DrainTimeout(set->slots[i].sub, timeout_ms + 60000) == NATS_OK;
    if (draining > 0 && timeout_ms > 0)
        wait_for(set, draining, &deadline);
    return draining;
}

void nats_unsubscribe(struct nats_subscriptions *set, long timeout_ms)
{
    if (set == NULL)
        return;
    drain(set, timeout_ms);
    atomic_store(&set->closing, true); /* what is still queued now is dropped, not half-handled */
    dispatcher_stop(set->dispatcher);  /* and the action under way is not retried */
    int dropped = 0, pending = 0;
    for (size_t i = 0; i < set->n_slots; i++) {
        natsSubscription *sub = set->slots[i].sub;
        if (sub != NULL && natsSubscription_IsValid(sub) && natsSubscription_GetPending(sub, &pending, NULL) == NATS_OK)
            dropped += pending;
        if (sub != NULL && natsSubscription_IsValid(sub))
            natsSubscription_Unsubscribe(sub);
    }
    if (dropped > 0) {
        char n[16];
        snprintf(n, sizeof(n), "%d", dropped);
        log_kv(LOG_WARN, "alerts dropped at the drain deadline", "count", n, NULL);
    }
    size_t subscribed = 0;
    for (size_t i = 0; i < set->n_slots; i++)
        subscribed += set->slots[i].sub != NULL;
    wait_for(set, subscribed, NULL); /* the handler in flight returns: no action is cut in half */
    for (size_t i = 0; i < set->n_slots; i++)
        natsSubscription_Destroy(set->slots[i].sub);
    pthread_cond_destroy(&set->done);
    pthread_mutex_destroy(&set->lock);
    free(set->slots);
    free(set);
}
