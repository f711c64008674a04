/*
 * nats.c: the NATS subscriber (cnats). One subscription per topic pattern; each has its own delivery
 * thread in cnats. A subject that matches several patterns is delivered once per matching subscription;
 * only the subscription of its first matching pattern dispatches it, which keeps "each alert handled
 * once" without shared state, also across replicas of one queue group.
 */
#include "playbookd/nats.h"

#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/log.h"

#define DRAIN_TIMEOUT_MS 10000

struct slot {
    struct subscriber *owner;
    int topic;
    natsSubscription *sub;
};

struct subscriber {
    const struct config *cfg;
    struct dispatcher *dispatcher;
    natsOptions *opts;
    natsConnection *conn;
    struct slot *slots;
    size_t n_slots;
};

static int nats_error(struct error *err, const char *what, natsStatus s)
{
    const char *detail = nats_GetLastError(NULL);
    return error_set(err, "nats: %s: %s%s%s", what, natsStatus_GetText(s), detail && *detail ? ": " : "",
                     detail ? detail : "");
}

static void on_message(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc, (void)sub;
    struct slot *slot = closure;
    const char *subject = natsMsg_GetSubject(msg);
    int first = dispatch_first_topic(slot->owner->dispatcher, subject);
    /* Another subscription handles it, unless our matching disagrees with the server's (then we do). */
    if (first == slot->topic || first < 0)
        dispatch_message(slot->owner->dispatcher, subject, natsMsg_GetData(msg),
                         (size_t)natsMsg_GetDataLength(msg), "nats");
    natsMsg_Destroy(msg);
}

static void log_connection(natsConnection *nc, const char *event, enum log_level level)
{
    char url[256] = "";
    if (natsConnection_GetConnectedUrl(nc, url, sizeof(url)) != NATS_OK)
        url[0] = 0;
    log_kv(level, event, "url", url[0] ? url : NULL, NULL);
}

static void on_connected(natsConnection *nc, void *closure)
{
    (void)closure;
    log_connection(nc, "nats connected", LOG_INFO);
    log_kv(LOG_INFO, "ready", NULL);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)closure;
    log_kv(LOG_WARN, "nats disconnected, reconnecting", NULL);
    (void)nc;
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    (void)closure;
    log_connection(nc, "nats reconnected", LOG_INFO);
}

static void on_closed(natsConnection *nc, void *closure)
{
    (void)nc, (void)closure;
    log_kv(LOG_INFO, "nats connection closed", NULL);
}

static void on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    (void)nc, (void)closure;
    const char *subject = sub ? natsSubscription_GetSubject(sub) : NULL;
    log_kv(LOG_ERROR, "nats error", "pattern", subject, "error", natsStatus_GetText(err),
           "hint", err == NATS_SLOW_CONSUMER ? "alerts were dropped: playbooks are slower than the alert rate" : NULL,
           NULL);
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

static natsStatus build_options(struct subscriber *sb, natsOptions **out)
{
    const struct config_nats *n = &sb->cfg->nats;
    natsOptions *o = NULL;
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK)
        s = natsOptions_SetServers(o, (const char **)n->servers.items, (int)n->servers.n);
    if (s == NATS_OK)
        s = natsOptions_SetName(o, "playbookd");
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(o, -1); /* forever */
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(o, 1000);
    if (s == NATS_OK)
        s = natsOptions_SetRetryOnFailedConnect(o, true, on_connected, sb);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(o, on_disconnected, sb);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(o, on_reconnected, sb);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(o, on_closed, sb);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(o, on_async_error, sb);
    if (s == NATS_OK)
        s = set_auth(o, n);
    if (s == NATS_OK)
        s = set_tls(o, n);
    if (s != NATS_OK)
        natsOptions_Destroy(o);
    *out = s == NATS_OK ? o : NULL;
    return s;
}

static natsStatus subscribe_all(struct subscriber *sb)
{
    const char *queue = sb->cfg->nats.queue_group;
    for (size_t i = 0; i < sb->n_slots; i++) {
        struct slot *slot = &sb->slots[i];
        const char *pattern = sb->cfg->topics[i].pattern;
        natsStatus s = queue ? natsConnection_QueueSubscribe(&slot->sub, sb->conn, pattern, queue, on_message, slot)
                             : natsConnection_Subscribe(&slot->sub, sb->conn, pattern, on_message, slot);
        if (s != NATS_OK)
            return s;
        log_kv(LOG_INFO, "subscribed", "pattern", pattern, "queue_group", queue, NULL);
    }
    return NATS_OK;
}

int subscriber_create(struct subscriber **out, const struct config *cfg, struct dispatcher *d, struct error *err)
{
    struct subscriber *sb = calloc(1, sizeof(*sb));
    *out = NULL;
    if (sb == NULL || (sb->slots = calloc(cfg->n_topics, sizeof(*sb->slots))) == NULL) {
        free(sb);
        return error_set(err, "out of memory");
    }
    sb->cfg = cfg;
    sb->dispatcher = d;
    sb->n_slots = cfg->n_topics;
    for (size_t i = 0; i < sb->n_slots; i++)
        sb->slots[i] = (struct slot){.owner = sb, .topic = (int)i};

    natsStatus s = build_options(sb, &sb->opts);
    if (s != NATS_OK) {
        subscriber_destroy(sb);
        return nats_error(err, "options", s);
    }
    s = natsConnection_Connect(&sb->conn, sb->opts);
    bool pending = s == NATS_NOT_YET_CONNECTED;
    if (s != NATS_OK && !pending) {
        subscriber_destroy(sb);
        return nats_error(err, "connect", s);
    }
    if (pending)
        log_kv(LOG_WARN, "nats not reachable yet, retrying in the background", NULL);
    s = subscribe_all(sb);
    if (s == NATS_OK && !pending)
        s = natsConnection_FlushTimeout(sb->conn, 5000);
    if (s != NATS_OK) {
        subscriber_destroy(sb);
        return nats_error(err, "subscribe", s);
    }
    if (!pending) {
        log_connection(sb->conn, "nats connected", LOG_INFO);
        log_kv(LOG_INFO, "ready", NULL);
    }
    *out = sb;
    return 0;
}

void subscriber_destroy(struct subscriber *sb)
{
    if (sb == NULL)
        return;
    for (size_t i = 0; i < sb->n_slots; i++) {
        natsSubscription *sub = sb->slots[i].sub;
        if (sub == NULL)
            continue;
        if (natsSubscription_Drain(sub) == NATS_OK)
            natsSubscription_WaitForDrainCompletion(sub, DRAIN_TIMEOUT_MS);
        else
            natsSubscription_Unsubscribe(sub);
    }
    if (sb->conn != NULL)
        natsConnection_Close(sb->conn);
    for (size_t i = 0; i < sb->n_slots; i++)
        natsSubscription_Destroy(sb->slots[i].sub);
    natsConnection_Destroy(sb->conn);
    natsOptions_Destroy(sb->opts);
    free(sb->slots);
    free(sb);
}
