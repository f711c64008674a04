/*
 * jetstream.c: the at-least-once input (cnats JetStream). One thread fetches from a durable pull
 * consumer as many messages as the workers can take (a window of twice their number in hand), and
 * hands each to the current dispatcher; the worker that ends the alert acks, naks or terms the message
 * (js_done). The consumer's AckWait is ack_wait and it has no BackOff: the server would replace AckWait
 * with BackOff[0]; our naks carry the backoff delays instead. Its MaxAckPending is the server's default
 * (1000), more than any replica's window. Other inputs (HTTP) publish into the stream through
 * jetstream_publish, on the same context.
 */
#include "playbookd/jetstream.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "playbookd/log.h"
#include "playbookd/metrics.h"
#include "playbookd/workers.h"

#define FETCH_MAX 256        /* messages per fetch at most */
#define FETCH_WAIT_MS 500    /* how long one fetch waits for messages */
#define NS_PER_MS 1000000LL  /* JetStream durations are in nanoseconds */
#define PUBLISH_WAIT_MS 2000 /* how long jetstream_publish waits for the stream's ack */

struct js_consumer {
    jsCtx *js;
    natsSubscription *sub;
    struct workers *pool;
    struct nats_link *link;
    pthread_mutex_t lock; /* guards current and in_hand */
    pthread_cond_t settled;
    struct dispatcher *current;
    size_t in_hand, window;   /* alerts fetched and not yet settled, and how many may be */
    struct dispatcher *setup; /* whose config the fetching thread binds with (NATS was down), else NULL */
    pthread_t thread;
    bool started;
    atomic_bool stopping;
    long max_deliver;
    long backoff_ms[JETSTREAM_MAX_BACKOFF];
    size_t n_backoff;
};

static struct log_throttle fetch_log = LOG_THROTTLE_INIT;

static int js_error(struct error *err, const char *what, natsStatus s, jsErrCode code)
{
    const char *detail = nats_GetLastError(NULL);
    return error_set(err, "jetstream: %s: %s%s%s (code %d)", what, natsStatus_GetText(s), detail && *detail ? ": " : "",
                     detail ? detail : "", (int)code);
}

/* Creates the stream, or leaves the one that exists as it is. */
static int ensure_stream(jsCtx *js, const struct config_jetstream *cfg, struct error *err)
{
    jsStreamConfig sc;
    jsStreamInfo *si = NULL;
    jsErrCode code = 0;
    jsStreamConfig_Init(&sc);
    sc.Name = cfg->stream;
    sc.Subjects = (const char **)cfg->stream_subjects.items;
    sc.SubjectsLen = (int)cfg->stream_subjects.n;
    sc.MaxAge = (int64_t)cfg->max_age_ms * NS_PER_MS;
    sc.Storage = strcmp(cfg->storage, "memory") == 0 ? js_MemoryStorage : js_FileStorage;
    natsStatus s = js_AddStream(&si, js, &sc, NULL, &code);
    if (s != NATS_OK && code == JSStreamNameExistErr)
        s = js_GetStreamInfo(&si, js, cfg->stream, NULL, &code);
    if (s != NATS_OK)
        return js_error(err, "create stream", s, code);
    log_kv(LOG_INFO, "jetstream stream ready", "stream", cfg->stream, NULL);
    jsStreamInfo_Destroy(si);
    return 0;
}

/* True when the consumer on the server differs from what cfg asks for in what we set. */
static bool consumer_differs(const jsConsumerConfig *have, const jsConsumerConfig *want)
{
    return have->AckWait != want->AckWait || have->MaxDeliver != want->MaxDeliver || have->BackOffLen != 0 ||
           have->AckPolicy != want->AckPolicy || have->FilterSubject == NULL ||
           strcmp(have->FilterSubject, want->FilterSubject) != 0;
}

/*
 * Creates the durable consumer, or brings the existing one to cfg: a restart with a new ack_wait or
 * max_deliver updates it (js_PullSubscribe alone refuses to bind to a consumer configured otherwise).
 * It has no BackOff, which would replace AckWait: our naks carry the backoff delays.
 */
static int ensure_consumer(jsCtx *js, const struct config_jetstream *cfg, struct error *err)
{
    jsConsumerConfig cc;
    jsConsumerInfo *ci = NULL;
    jsErrCode code = 0;
    jsConsumerConfig_Init(&cc);
    cc.Durable = cfg->durable;
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = (int64_t)cfg->ack_wait_ms * NS_PER_MS;
    cc.MaxDeliver = cfg->max_deliver;
    cc.FilterSubject = cfg->subject;
    natsStatus s = js_GetConsumerInfo(&ci, js, cfg->stream, cfg->durable, NULL, &code);
    const char *what = "look up the durable consumer";
    if (s == NATS_NOT_FOUND) {
        jsConsumerInfo_Destroy(ci);
        ci = NULL;
        what = "create the durable consumer";
        s = js_AddConsumer(&ci, js, cfg->stream, &cc, NULL, &code);
    } else if (s == NATS_OK && consumer_differs(ci->Config, &cc)) {
        jsConsumerInfo_Destroy(ci);
        ci = NULL;
        what = "update the durable consumer";
        s = js_UpdateConsumer(&ci, js, cfg->stream, &cc, NULL, &code);
        if (s == NATS_OK)
            log_kv(LOG_INFO, "jetstream consumer updated to the config", "durable", cfg->durable, NULL);
    }
    jsConsumerInfo_Destroy(ci);
    return s == NATS_OK ? 0 : js_error(err, what, s, code);
}

/* Binds a pull subscription to the durable consumer (made to match cfg first). */
static int bind_consumer(struct js_consumer *c, const struct config_jetstream *cfg, struct error *err)
{
    jsSubOptions so;
    jsErrCode code = 0;
    if (ensure_consumer(c->js, cfg, err) != 0)
        return -1;
    jsSubOptions_Init(&so);
    so.Stream = cfg->stream;
    so.Consumer = cfg->durable; /* bind: the consumer is checked, not created */
    natsStatus s = js_PullSubscribe(&c->sub, c->js, cfg->subject, cfg->durable, NULL, &so, &code);
    if (s != NATS_OK)
        return js_error(err, "bind the durable consumer", s, code);
    log_kv(LOG_INFO, "subscribed", "stream", cfg->stream, "durable", cfg->durable, "subject", cfg->subject, NULL);
    return 0;
}

/* The stream (when create_stream says so) and the bound consumer. */
static int set_up(struct js_consumer *c, const struct config_jetstream *cfg, struct error *err)
{
    if (cfg->create_stream && ensure_stream(c->js, cfg, err) != 0)
        return -1;
    return bind_consumer(c, cfg, err);
}

/* Started before NATS answered: the fetching thread binds once it can, trying every second. */
static bool deferred_set_up(struct js_consumer *c, unsigned long *tries)
{
    struct error err;
    if (set_up(c, &dispatcher_config(c->setup)->nats.js, &err) == 0) {
        dispatcher_release(c->setup);
        c->setup = NULL;
        return true;
    }
    if ((*tries)++ % 10 == 0)
        log_kv(LOG_WARN, "jetstream: cannot bind the consumer yet (retrying)", "error", err.msg, NULL);
    for (int i = 0; i < 10 && !atomic_load(&c->stopping); i++)
        usleep(100 * 1000);
    return false;
}

static void term(natsMsg *msg, const char *why, const char *subject)
{
    natsMsg_Term(msg, NULL);
    log_kv(LOG_WARN, "alert terminated: it will not be delivered again", "subject", subject, "reason", why, NULL);
}

/* How the worker that ended an alert settles its message. arg: a struct js_msg. */
struct js_msg {
    struct js_consumer *c;
    natsMsg *msg;
};

static void js_done(void *arg, enum dispatch_status status, const char *subject)
{
    struct js_msg *m = arg;
    struct js_consumer *c = m->c;
    jsMsgMetaData *meta = NULL;
    uint64_t delivered = natsMsg_GetMetaData(&meta, m->msg) == NATS_OK ? meta->NumDelivered : 1;
    jsMsgMetaData_Destroy(meta);
    if (status == DISPATCH_DONE) {
        natsMsg_Ack(m->msg, NULL);
    } else if (status == DISPATCH_REJECTED) {
        term(m->msg, "not a valid alert", subject);
    } else if (status == DISPATCH_FAILED) {
        term(m->msg, "a playbook failed for good", subject);
    } else if (status == DISPATCH_DROPPED) {
        natsMsg_Nak(m->msg, NULL); /* stopping: another replica, or the next start, takes it */
    } else if ((long)delivered >= c->max_deliver) {
        char n[24];
        snprintf(n, sizeof(n), "%llu", (unsigned long long)delivered);
        natsMsg_Term(m->msg, NULL);
        metrics_alerts_dropped("max_deliver", 1);
        log_kv(LOG_ERROR, "alert dropped after N deliveries", "subject", subject, "deliveries", n, NULL);
    } else {
        size_t i = delivered - 1 < c->n_backoff ? delivered - 1 : c->n_backoff - 1;
        natsMsg_NakWithDelay(m->msg, (int64_t)c->backoff_ms[i], NULL);
    }
    natsMsg_Destroy(m->msg);
    free(m);
    pthread_mutex_lock(&c->lock);
    c->in_hand--;
    pthread_cond_signal(&c->settled);
    pthread_mutex_unlock(&c->lock);
}

static void js_progress(void *arg)
{
    natsMsg_InProgress(((struct js_msg *)arg)->msg, NULL);
}

/* Hands one fetched message to the pool through d; settles it at once if it could not be queued. */
static void hand_over(struct js_consumer *c, struct dispatcher *d, natsMsg *msg)
{
    struct js_msg *m = malloc(sizeof(*m));
    if (m == NULL) {
        natsMsg_Nak(msg, NULL);
        natsMsg_Destroy(msg);
        return;
    }
    pthread_mutex_lock(&c->lock);
    c->in_hand++; /* js_done gives it back */
    pthread_mutex_unlock(&c->lock);
    m->c = c;
    m->msg = msg;
    struct delivery dl = {.done = js_done, .progress = js_progress, .arg = m};
    dispatch_submit(d, c->pool, natsMsg_GetSubject(msg), natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg),
                    "jetstream", &dl); /* js_done is called whatever happens */
}

static struct dispatcher *current_dispatcher(struct js_consumer *c)
{
    pthread_mutex_lock(&c->lock);
    struct dispatcher *d = c->current;
    dispatcher_ref(d);
    pthread_mutex_unlock(&c->lock);
    return d;
}

/*
 * One pull request for at most batch messages: no_wait answers at once with what the stream holds (a 404
 * status when it holds none); else the server keeps the request open for FETCH_WAIT_MS.
 */
static natsStatus pull(struct js_consumer *c, natsMsgList *list, size_t batch, bool no_wait)
{
    jsFetchRequest req;
    jsFetchRequest_Init(&req);
    req.Batch = (int)(batch < FETCH_MAX ? batch : FETCH_MAX);
    req.Expires = (int64_t)FETCH_WAIT_MS * NS_PER_MS;
    req.NoWait = no_wait;
    return natsSubscription_FetchRequest(list, c->sub, &req);
}

/*
 * Fetches what the pool has room for and hands it over. cnats waits for a whole batch until the request
 * expires, so an idle consumer waits for one message only: the first alert after a quiet spell goes at
 * once, and the next pull (no_wait) takes whatever came with it.
 */
static void fetch_once(struct js_consumer *c, size_t room)
{
    natsMsgList list = {0};
    natsStatus s = pull(c, &list, room, true);
    if (s == NATS_NOT_FOUND || (s == NATS_OK && list.Count == 0)) {
        natsMsgList_Destroy(&list);
        s = pull(c, &list, 1, false);
    }
    if (s != NATS_OK && s != NATS_TIMEOUT && s != NATS_NOT_FOUND) {
        log_throttled(&fetch_log, LOG_WARN, "jetstream fetch failed (retrying)", 1);
        usleep(200 * 1000);
    }
    struct dispatcher *d = list.Count > 0 ? current_dispatcher(c) : NULL;
    for (int i = 0; i < list.Count; i++) {
        hand_over(c, d, list.Msgs[i]);
        list.Msgs[i] = NULL; /* now the job's */
    }
    dispatcher_release(d);
    natsMsgList_Destroy(&list);
}

/*
 * How many more alerts may be fetched, after waiting up to timeout_ms for any: at most `window` are in
 * hand at once, so a fetched alert soon reaches a worker and its ack_wait is not spent in the queue.
 */
static size_t wait_room(struct js_consumer *c, long timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += timeout_ms * 1000000L;
    deadline.tv_sec += deadline.tv_nsec / 1000000000L;
    deadline.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&c->lock);
    while (c->in_hand >= c->window && !atomic_load(&c->stopping))
        if (pthread_cond_timedwait(&c->settled, &c->lock, &deadline) != 0)
            break;
    size_t room = c->in_hand < c->window ? c->window - c->in_hand : 0;
    pthread_mutex_unlock(&c->lock);
    return room;
}

static void *fetch_main(void *arg)
{
    struct js_consumer *c = arg;
    unsigned long tries = 0;
    pthread_setname_np(pthread_self(), "pb-js-fetch");
    while (!atomic_load(&c->stopping)) {
        if (c->sub == NULL && !deferred_set_up(c, &tries))
            continue;
        if (!nats_link_connected(c->link)) { /* a pull request sent now would wait in the reconnect buffer */
            usleep(50 * 1000);
            continue;
        }
        size_t room = wait_room(c, FETCH_WAIT_MS);
        if (room > 0 && !atomic_load(&c->stopping))
            fetch_once(c, room);
    }
    return NULL;
}

int jetstream_start(struct js_consumer **out, struct nats_link *l, const struct config_jetstream *cfg,
                    struct dispatcher *d, struct workers *pool, size_t window, struct error *err)
{
    struct js_consumer *c = calloc(1, sizeof(*c));
    *out = NULL;
    if (c == NULL)
        return error_set(err, "out of memory");
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->settled, NULL);
    c->pool = pool;
    c->window = window;
    c->link = l;
    c->max_deliver = cfg->max_deliver;
    c->n_backoff = cfg->n_backoff;
    memcpy(c->backoff_ms, cfg->backoff_ms, sizeof(c->backoff_ms));
    c->current = d;
    dispatcher_ref(d);
    natsStatus s = natsConnection_JetStream(&c->js, nats_link_connection(l), NULL);
    int rc = s == NATS_OK ? 0 : js_error(err, "context", s, 0);
    if (rc == 0 && nats_link_connected(l)) {
        rc = set_up(c, cfg, err); /* a config the server refuses stops the start */
    } else if (rc == 0) {
        c->setup = d;
        dispatcher_ref(d);
        log_kv(LOG_WARN, "jetstream: nats is not connected yet: the consumer is bound once it is", NULL);
    }
    if (rc == 0 && pthread_create(&c->thread, NULL, fetch_main, c) != 0)
        rc = error_set(err, "jetstream: cannot start the fetching thread");
    c->started = rc == 0;
    if (rc != 0) {
        jetstream_destroy(c);
        return -1;
    }
    *out = c;
    return 0;
}

int jetstream_publish(struct js_consumer *c, const char *subject, const char *data, size_t len, struct error *err)
{
    jsPubOptions po;
    jsErrCode code = 0;
    if (!nats_link_connected(c->link))
        return error_set(err, "jetstream: NATS is not connected");
    jsPubOptions_Init(&po);
    po.MaxWait = PUBLISH_WAIT_MS;
    natsStatus s = js_Publish(NULL, c->js, subject, data, (int)len, &po, &code);
    return s == NATS_OK ? 0 : js_error(err, "publish", s, code);
}

void jetstream_set_dispatcher(struct js_consumer *c, struct dispatcher *d)
{
    dispatcher_ref(d);
    pthread_mutex_lock(&c->lock);
    struct dispatcher *old = c->current;
    c->current = d;
    pthread_mutex_unlock(&c->lock);
    dispatcher_release(old);
}

void jetstream_stop(struct js_consumer *c)
{
    if (c == NULL || !c->started)
        return;
    atomic_store(&c->stopping, true);
    pthread_join(c->thread, NULL);
    c->started = false;
}

void jetstream_destroy(struct js_consumer *c)
{
    if (c == NULL)
        return;
    jetstream_stop(c);
    if (c->sub != NULL)
        natsSubscription_Unsubscribe(c->sub); /* a durable consumer stays on the server */
    natsSubscription_Destroy(c->sub);
    jsCtx_Destroy(c->js);
    dispatcher_release(c->setup);
    dispatcher_release(c->current);
    pthread_cond_destroy(&c->settled);
    pthread_mutex_destroy(&c->lock);
    free(c);
}
