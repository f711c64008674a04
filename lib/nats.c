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
#include "playbookd/nkey.h"
#include "playbookd/text.h"

struct nats_link {
    natsOptions *opts;
    struct nkey *nkey; /* nats.nkey: signs the server's nonce at every (re)connection */
    natsConnection *conn;
    char queue[96]; /* the queue group of every subscription */
};

struct slot {
    struct nats_subscriptions *set;
    natsSubscription *sub;
    int64_t dropped_seen; /* cnats's dropped count at the last poll */
};

struct nats_subscriptions {
    struct dispatcher *dispatcher; /* a reference, released when the set is freed */
    struct workers *pool;
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

/* Closed for good: by us, or by the server, such as when it refuses the credentials (said here). */
static void on_closed(natsConnection *nc, void *closure)
{
    (void)closure;
    const char *why = NULL;
    natsStatus s = natsConnection_GetLastError(nc, &why);
    metrics_nats_connected(false);
    if (s == NATS_OK || s == NATS_CONNECTION_CLOSED)
        log_kv(LOG_INFO, "nats connection closed", NULL);
    else
        log_kv(LOG_ERROR, "nats connection closed", "error", natsStatus_GetText(s), "detail", why && *why ? why : NULL,
               "hint",
               "no more reconnection: check the server's address and the credentials (a refused login ends here)",
               NULL);
}

static struct log_throttle slow_log = LOG_THROTTLE_INIT, stop_log = LOG_THROTTLE_INIT;

static void on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    (void)nc, (void)closure;
    if (err == NATS_SLOW_CONSUMER)
        return; /* counted and logged by nats_poll_dropped */
    const char *subject = sub ? natsSubscription_GetSubject(sub) : NULL;
    log_kv(LOG_ERROR, "nats error", "pattern", subject, "error", natsStatus_GetText(err), NULL);
}

/* cnats asks for the nonce's signature at every connection and frees it (malloc'd) afterwards. */
static natsStatus sign_nonce(char **error_text, unsigned char **sig, int *sig_len, const char *nonce, void *closure)
{
    (void)error_text;
    *sig = malloc(NKEY_SIGNATURE_LEN);
    if (*sig == NULL)
        return NATS_NO_MEMORY;
    if (nkey_sign(closure, (const unsigned char *)nonce, strlen(nonce), *sig) != 0) {
        free(*sig);
        *sig = NULL;
        return NATS_ERR;
    }
    *sig_len = NKEY_SIGNATURE_LEN;
    return NATS_OK;
}

/* The one way playbookd and falco-nats present their credentials; the nkey is kept by the link. */
static natsStatus set_auth(natsOptions *o, const struct config_nats *n, struct nkey *nkey)
{
    natsStatus s = NATS_OK;
    if (n->token != NULL)
        s = natsOptions_SetToken(o, n->token);
    if (s == NATS_OK && n->user != NULL)
        s = natsOptions_SetUserInfo(o, n->user, n->password);
    if (s == NATS_OK && n->credentials != NULL)
        s = natsOptions_SetUserCredentialsFromFiles(o, n->credentials, NULL);
    if (s == NATS_OK && nkey != NULL)
        s = natsOptions_SetNKey(o, nkey_public(nkey), sign_nonce, nkey);
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

static natsStatus build_options(const struct config_nats *n, const char *name, struct nkey *nkey, natsOptions **out)
{
    natsOptions *o = NULL;
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK)
        s = natsOptions_SetServers(o, (const char **)n->servers.items, (int)n->servers.n);
    if (s == NATS_OK)
        s = natsOptions_SetName(o, name);
    /* Replies (JetStream fetches, acks of publishes) come to _INBOX_<name>.>: the server's permissions can
     * then keep each identity to its own replies (manifests/nats.yaml). */
    char inbox[64];
    snprintf(inbox, sizeof(inbox), "_INBOX_%s", name);
    if (s == NATS_OK)
        s = natsOptions_SetCustomInboxPrefix(o, inbox);
    /* One delivery thread for every subscription: alerts reach the workers in the order they arrived, whatever
     * patterns they matched (cnats otherwise orders per subscription only). */
    if (s == NATS_OK)
        s = nats_SetMessageDeliveryPoolSize(1);
    if (s == NATS_OK)
        s = natsOptions_UseGlobalMessageDelivery(o, true);
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
        s = set_auth(o, n, nkey);
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
    if (n->nkey != NULL && nkey_load(&l->nkey, n->nkey, err) != 0) {
        free(l);
        return -1;
    }
    natsStatus s = build_options(n, name, l->nkey, &l->opts);
    if (s != NATS_OK) {
        nkey_destroy(l->nkey);
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

/*
 * What is buffered (JetStream acks, for playbookd) goes out: after a reconnect if need be, within
 * timeout_ms. natsConnection_Buffered misses cnats's reconnect buffer, so a disconnected link is simply
 * waited for, and a flush that cannot be confirmed is logged.
 */
static void flush_buffered(struct nats_link *l, long timeout_ms)
{
    long waited = 0;
    for (; waited < timeout_ms && !nats_link_connected(l); waited += 100)
        usleep(100 * 1000);
    if (nats_link_connected(l) && natsConnection_FlushTimeout(l->conn, timeout_ms - waited + 100) == NATS_OK)
        return;
    log_kv(LOG_ERROR, "NATS unreachable at exit: what was buffered (acks) may not be delivered", "hint",
           "with JetStream those alerts are delivered again", NULL);
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
    nkey_destroy(l->nkey);
    free(l);
}

bool nats_link_connected(struct nats_link *l)
{
    return l->conn != NULL && natsConnection_Status(l->conn) == NATS_CONN_STATUS_CONNECTED;
}

bool nats_link_closed(struct nats_link *l)
{
    return l->conn != NULL && natsConnection_IsClosed(l->conn);
}

natsConnection *nats_link_connection(struct nats_link *l)
{
    return l->conn;
}

static void count_stop_drops(unsigned long n)
{
    metrics_alerts_dropped("shutdown", n);
    log_throttled(&stop_log, LOG_WARN, "alerts dropped: playbookd is stopping", n);
}

/* Core NATS has no redelivery: what the workers never ran is lost, so it is counted. */
static void on_done(void *arg, enum dispatch_status status, const char *subject)
{
    (void)arg, (void)subject;
    if (status == DISPATCH_DROPPED)
        count_stop_drops(1);
}

static void on_message(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc, (void)sub;
    struct slot *slot = closure;
    static const struct delivery core = {.done = on_done};
    if (atomic_load(&slot->set->closing))
        count_stop_drops(1);
    else
        dispatch_submit(slot->set->dispatcher, slot->set->pool, natsMsg_GetSubject(msg), natsMsg_GetData(msg),
                        (size_t)natsMsg_GetDataLength(msg), "nats", &core);
    natsMsg_Destroy(msg);
}

void nats_poll_dropped(struct nats_subscriptions *set)
{
    unsigned long total = 0;
    for (size_t i = 0; set != NULL && i < set->n_slots; i++) {
        int64_t dropped = 0;
        natsSubscription *sub = set->slots[i].sub;
        if (sub == NULL || natsSubscription_GetDropped(sub, &dropped) != NATS_OK)
            continue;
        if (dropped > set->slots[i].dropped_seen)
            total += (unsigned long)(dropped - set->slots[i].dropped_seen);
        set->slots[i].dropped_seen = dropped;
    }
    if (total == 0)
        return;
    metrics_alerts_dropped("slow_consumer", total);
    log_throttled(&slow_log, LOG_WARN, "alerts dropped: slow consumer (the pending limits were reached)", total);
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

static natsStatus subscribe_one(struct nats_link *l, struct slot *slot, const char *pattern,
                                const struct config_nats *n)
{
    natsStatus s = natsConnection_QueueSubscribe(&slot->sub, l->conn, pattern, l->queue, on_message, slot);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(slot->sub, (int)n->pending_messages, (int)n->pending_bytes);
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

int nats_subscribe(struct nats_subscriptions **out, struct nats_link *l, struct dispatcher *d, struct workers *pool,
                   struct error *err)
{
    const struct config *cfg = dispatcher_config(d);
    struct nats_subscriptions *set = calloc(1, sizeof(*set));
    *out = NULL;
    if (set == NULL || (set->slots = calloc(cfg->subscriptions.n, sizeof(*set->slots))) == NULL) {
        free(set);
        return error_set(err, "out of memory");
    }
    set->dispatcher = d;
    dispatcher_ref(d);
    set->pool = pool;
    pthread_mutex_init(&set->lock, NULL);
    pthread_cond_init(&set->done, NULL);
    natsStatus s = NATS_OK;
    for (size_t i = 0; i < cfg->subscriptions.n && s == NATS_OK; i++, set->n_slots++) {
        set->slots[i].set = set;
        s = subscribe_one(l, &set->slots[i], cfg->subscriptions.items[i], &cfg->nats);
    }
    if (s == NATS_OK && nats_link_connected(l))
        s = natsConnection_FlushTimeout(l->conn, 5000);
    if (s != NATS_OK) {
        nats_error(err, "subscribe", s);
        nats_drain(set, 0);
        nats_subscriptions_free(set);
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

void nats_drain(struct nats_subscriptions *set, long timeout_ms)
{
    if (set == NULL)
        return;
    struct timespec deadline;
    size_t draining = 0;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L)
        deadline.tv_sec++, deadline.tv_nsec -= 1000000000L;
    /* cnats gets a later deadline than ours (or none), so that ours decides and counts what is dropped. */
    for (size_t i = 0; i < set->n_slots; i++)
        draining += set->slots[i].sub && natsSubscription_DrainTimeout(
                                             set->slots[i].sub, timeout_ms < 0 ? 0 : timeout_ms + 60000) == NATS_OK;
    if (draining > 0 && timeout_ms != 0)
        wait_for(set, draining, timeout_ms < 0 ? NULL : &deadline);
    nats_poll_dropped(set);
    atomic_store(&set->closing, true); /* what arrives now is dropped and counted, not half-handled */
    int pending = 0;
    unsigned long dropped = 0;
    for (size_t i = 0; i < set->n_slots; i++) {
        natsSubscription *sub = set->slots[i].sub;
        if (sub != NULL && natsSubscription_IsValid(sub) && natsSubscription_GetPending(sub, &pending, NULL) == NATS_OK)
            dropped += (unsigned long)pending;
        if (sub != NULL && natsSubscription_IsValid(sub))
            natsSubscription_Unsubscribe(sub);
    }
    if (dropped > 0)
        count_stop_drops(dropped);
}

void nats_subscriptions_free(struct nats_subscriptions *set)
{
    if (set == NULL)
        return;
    size_t subscribed = 0;
    for (size_t i = 0; i < set->n_slots; i++)
        subscribed += set->slots[i].sub != NULL;
    wait_for(set, subscribed, NULL); /* the handler in flight returns: no alert is cut in half */
    for (size_t i = 0; i < set->n_slots; i++)
        natsSubscription_Destroy(set->slots[i].sub);
    log_throttle_flush(&stop_log, LOG_WARN, "alerts dropped: playbookd is stopping");
    dispatcher_release(set->dispatcher);
    pthread_cond_destroy(&set->done);
    pthread_mutex_destroy(&set->lock);
    free(set->slots);
    free(set);
}
