/*
 * httpin.c: the alert input over HTTP(S) (httpin.h). The access handler runs in the server's one thread.
 * At the headers it checks the path, the method, the token and the declared size, and answers at once when
 * one fails (the body is then never read). It gathers the body within HTTPIN_MAX_BODY, and within
 * HTTPIN_MAX_BUFFERED for all requests together. Once the body is in, it hands the alerts over in order,
 * none waiting: to the worker queue (dispatch_try_submit), or into the JetStream stream (published and
 * acknowledged), and stops at the first that cannot be taken. The token is compared in constant time and
 * never logged.
 */
#include "playbookd/httpin.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "playbookd/dispatch.h"
#include "playbookd/httpd.h"
#include "playbookd/jetstream.h"
#include "playbookd/log.h"
#include "playbookd/metrics.h"
#include "playbookd/text.h"

#define FIRST_CHUNK (64 * 1024) /* a body of unknown length starts with this much, and doubles */
#define PEM_MAX (1024 * 1024)

enum refusal { REFUSE_NONE, REFUSE_TOO_LARGE, REFUSE_BUSY, REFUSALS };

struct httpin {
    struct httpd *server;
    char *path, *token;
    size_t token_len;
    char *cert, *key, *client_ca; /* PEM texts, for the server's life */
    struct workers *pool;
    struct js_consumer *js;
    pthread_mutex_t lock; /* guards d */
    struct dispatcher *d;
    size_t buffered; /* bytes held by bodies: the server's thread only */
    struct log_throttle unauthorized_log, refused_log[REFUSALS], js_log;
};

/* One request's body, as it comes in. */
struct request {
    char *body;
    size_t len, cap;
    enum refusal refused; /* while the body came in: it is read to its end and dropped */
};

static const char *const refusal_logs[REFUSALS] = {
    NULL,
    "http alerts: bodies over 1 MiB refused (413)",
    "http alerts: requests refused: bodies in flight over their bound or queue full (503)",
};

/* {"accepted": N} with "error": text when given; NULL when out of memory. */
static char *answer_text(size_t accepted, const char *error)
{
    cJSON *o = cJSON_CreateObject();
    char *text = NULL;
    if (o != NULL && cJSON_AddNumberToObject(o, "accepted", (double)accepted) != NULL &&
        (error == NULL || cJSON_AddStringToObject(o, "error", error) != NULL))
        text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned int status, size_t accepted, const char *error,
                              const char *header, const char *value)
{
    char *text = answer_text(accepted, error);
    if (text == NULL)
        return MHD_NO;
    enum MHD_Result rc = httpd_reply(conn, status, "application/json", text, strlen(text), header, value);
    cJSON_free(text);
    return rc;
}

static enum MHD_Result busy(struct httpin *in, struct MHD_Connection *conn, size_t accepted, const char *error)
{
    metrics_http_alerts("busy", 1);
    log_throttled(&in->refused_log[REFUSE_BUSY], LOG_WARN, refusal_logs[REFUSE_BUSY], 1);
    return answer(conn, MHD_HTTP_SERVICE_UNAVAILABLE, accepted, error, "Retry-After", HTTPIN_RETRY_AFTER_S);
}

static enum MHD_Result too_large(struct httpin *in, struct MHD_Connection *conn)
{
    metrics_http_alerts("too_large", 1);
    log_throttled(&in->refused_log[REFUSE_TOO_LARGE], LOG_WARN, refusal_logs[REFUSE_TOO_LARGE], 1);
    return answer(conn, MHD_HTTP_CONTENT_TOO_LARGE, 0, "the body is over 1 MiB", NULL, NULL);
}

/* Equal secrets, in a time that depends on the expected one's length only. */
static bool same_secret(const char *given, size_t n, const char *want, size_t m)
{
    volatile unsigned char diff = n != m;
    for (size_t i = 0; i < m; i++)
        diff |= (unsigned char)want[i] ^ (unsigned char)(i < n ? given[i] : 0);
    return diff == 0;
}

/* "Authorization: Bearer TOKEN" (the scheme in any case) with the configured token. */
static bool authorized(const struct httpin *in, struct MHD_Connection *conn)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (v == NULL)
        return false;
    v += strspn(v, " \t");
    if (strncasecmp(v, "Bearer", 6) != 0 || (v[6] != ' ' && v[6] != '\t'))
        return false;
    v += 6 + strspn(v + 6, " \t");
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return same_secret(v, n, in->token, in->token_len);
}

/* The Content-Length header: 0 when it is there (*len set), 1 when absent (chunked), -1 when malformed. */
static int content_length(struct MHD_Connection *conn, size_t *len)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    char *end;
    if (v == NULL)
        return 1;
    if (*v < '0' || *v > '9')
        return -1;
    unsigned long long n = strtoull(v, &end, 10);
    if (*end != 0)
        return -1;
    *len = n > (unsigned long long)HTTPIN_MAX_BODY ? (size_t)HTTPIN_MAX_BODY + 1 : (size_t)n;
    return 0;
}

/* Takes room for a body of cap bytes within HTTPIN_MAX_BUFFERED. */
static bool reserve(struct httpin *in, size_t cap)
{
    if (in->buffered + cap > HTTPIN_MAX_BUFFERED)
        return false;
    in->buffered += cap;
    return true;
}

/* The headers are in: answers at once when the request cannot be taken, else starts its body. */
static enum MHD_Result on_headers(struct httpin *in, struct MHD_Connection *conn, const char *url, const char *method,
                                  void **req)
{
    size_t len = FIRST_CHUNK;
    if (strcmp(url, in->path) != 0)
        return answer(conn, MHD_HTTP_NOT_FOUND, 0, "not found: alerts are posted elsewhere", NULL, NULL);
    if (strcmp(method, "POST") != 0 && strcmp(method, "PUT") != 0)
        return answer(conn, MHD_HTTP_METHOD_NOT_ALLOWED, 0, "alerts are POSTed (or PUT)", "Allow", "POST, PUT");
    if (in->token != NULL && !authorized(in, conn)) {
        metrics_http_alerts("unauthorized", 1);
        log_throttled(&in->unauthorized_log, LOG_WARN, "http alerts: requests without the right token (401)", 1);
        return answer(conn, MHD_HTTP_UNAUTHORIZED, 0, "a bearer token is needed", "WWW-Authenticate",
                      "Bearer realm=\"playbookd\"");
    }
    const char *encoding = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Encoding");
    if (encoding != NULL && strcasecmp(encoding, "identity") != 0)
        return answer(conn, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, 0, "bodies are not compressed", NULL, NULL);
    int known = content_length(conn, &len);
    if (known < 0)
        return answer(conn, MHD_HTTP_BAD_REQUEST, 0, "a malformed Content-Length", NULL, NULL);
    if (len > HTTPIN_MAX_BODY)
        return too_large(in, conn);
    struct request *r = calloc(1, sizeof(*r));
    size_t cap = len > 0 ? len : 1;
    if (r == NULL || !reserve(in, cap)) {
        free(r);
        return busy(in, conn, 0, "too many bodies in flight");
    }
    r->body = malloc(cap);
    r->cap = cap;
    if (r->body == NULL)
        r->refused = REFUSE_BUSY;
    *req = r;
    return MHD_YES;
}

/* Makes room for n more bytes: doubles within HTTPIN_MAX_BODY and HTTPIN_MAX_BUFFERED, else refuses. */
static void grow(struct httpin *in, struct request *r, size_t n)
{
    size_t need = r->len + n, cap = r->cap;
    if (need <= cap)
        return;
    if (need > HTTPIN_MAX_BODY) {
        r->refused = REFUSE_TOO_LARGE;
        return;
    }
    while (cap < need)
        cap = cap * 2 < HTTPIN_MAX_BODY ? cap * 2 : HTTPIN_MAX_BODY;
    if (!reserve(in, cap - r->cap)) {
        r->refused = REFUSE_BUSY;
        return;
    }
    char *grown = realloc(r->body, cap);
    if (grown == NULL) {
        in->buffered -= cap - r->cap;
        r->refused = REFUSE_BUSY;
        return;
    }
    r->body = grown;
    r->cap = cap;
}

/* A piece of the body: appended, or dropped once the request is refused. */
static void on_body(struct httpin *in, struct request *r, const char *data, size_t n)
{
    if (r->refused == REFUSE_NONE)
        grow(in, r, n);
    if (r->refused != REFUSE_NONE)
        return;
    memcpy(r->body + r->len, data, n);
    r->len += n;
}

static struct dispatcher *current(struct httpin *in)
{
    pthread_mutex_lock(&in->lock);
    struct dispatcher *d = in->d;
    dispatcher_ref(d);
    pthread_mutex_unlock(&in->lock);
    return d;
}

/* JetStream: validated, published and acknowledged; a failure to store it is worth a retry (503). */
static enum httpin_verdict publish(struct httpin *in, const char *line, size_t len, struct error *why)
{
    char subject[SUBJECT_MAX];
    if (dispatch_validate(line, len, "http", subject, why) != 0)
        return HTTPIN_REJECTED;
    if (jetstream_publish(in->js, subject, line, len, why) == 0)
        return HTTPIN_ACCEPTED;
    log_throttled(&in->js_log, LOG_WARN, "http alerts: not stored in the JetStream stream (503)", 1);
    return HTTPIN_BUSY;
}

/* Where a body's alerts go: the server and, without JetStream, the dispatcher of the moment. */
struct hand_over_to {
    struct httpin *in;
    struct dispatcher *d;
};

/* One alert to the queue (or the stream), without waiting (an httpin_take_fn). */
static enum httpin_verdict hand_over(void *arg, const char *line, size_t len, struct error *why)
{
    struct hand_over_to *to = arg;
    if (to->in->js != NULL)
        return publish(to->in, line, len, why);
    switch (dispatch_try_submit(to->d, to->in->pool, line, len, "http", why)) {
    case DISPATCH_REJECTED: return HTTPIN_REJECTED;
    case DISPATCH_BUSY: error_set(why, "the queue is full"); return HTTPIN_BUSY;
    case DISPATCH_DROPPED: error_set(why, "playbookd is stopping"); return HTTPIN_BUSY;
    case DISPATCH_RETRY: error_set(why, "out of memory"); return HTTPIN_BUSY;
    default: return HTTPIN_ACCEPTED;
    }
}

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return false;
    return true;
}

void httpin_body(const char *body, size_t len, httpin_take_fn take, void *arg, struct httpin_answer *out)
{
    size_t line = 0;
    enum httpin_verdict v = HTTPIN_ACCEPTED;
    struct error why = {0};
    out->accepted = 0;
    out->error[0] = 0;
    for (const char *p = body, *end = body + len; p < end && v == HTTPIN_ACCEPTED;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *stop = nl ? nl : end;
        line++;
        if (!blank(p, (size_t)(stop - p))) {
            v = take(arg, p, (size_t)(stop - p), &why);
            out->accepted += v == HTTPIN_ACCEPTED;
        }
        p = nl ? nl + 1 : end;
    }
    out->status = v == HTTPIN_BUSY                             ? MHD_HTTP_SERVICE_UNAVAILABLE
                  : v == HTTPIN_REJECTED || out->accepted == 0 ? MHD_HTTP_BAD_REQUEST
                                                               : MHD_HTTP_OK;
    if (v != HTTPIN_ACCEPTED)
        snprintf(out->error, sizeof(out->error), "line %zu: %s", line, why.msg);
    else if (out->accepted == 0)
        snprintf(out->error, sizeof(out->error), "the body holds no alert");
}

/* The whole body is in: its alerts, one per line, are handed over in order until one cannot be. */
static enum MHD_Result on_complete_body(struct httpin *in, struct MHD_Connection *conn, struct request *r)
{
    struct hand_over_to to = {.in = in, .d = in->js == NULL ? current(in) : NULL};
    struct httpin_answer a;
    httpin_body(r->body, r->len, hand_over, &to, &a);
    dispatcher_release(to.d);
    metrics_http_alerts("accepted", a.accepted);
    if (a.status == MHD_HTTP_SERVICE_UNAVAILABLE)
        return busy(in, conn, a.accepted, a.error);
    if (a.status == MHD_HTTP_BAD_REQUEST)
        metrics_http_alerts("rejected", 1);
    return answer(conn, a.status, a.accepted, a.error[0] ? a.error : NULL, NULL, NULL);
}

static enum MHD_Result on_request(void *arg, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *upload_data, size_t *upload_data_size, void **req)
{
    struct httpin *in = arg;
    struct request *r = *req;
    if (r == NULL)
        return on_headers(in, conn, url, method, req);
    if (*upload_data_size > 0) {
        on_body(in, r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->refused == REFUSE_TOO_LARGE)
        return too_large(in, conn);
    if (r->refused == REFUSE_BUSY)
        return busy(in, conn, 0, "too many bodies in flight");
    return on_complete_body(in, conn, r);
}

static void on_completed(void *arg, void *req)
{
    struct httpin *in = arg;
    struct request *r = req;
    in->buffered -= r->cap;
    free(r->body);
    free(r);
}

/* Reads a PEM file named in the config, or NULL with the reason. */
static int read_pem(char **out, const char *path, const char *what, struct error *err)
{
    struct error why;
    size_t len;
    *out = NULL;
    if (path == NULL)
        return 0;
    *out = text_read_file(path, PEM_MAX, &len, &why);
    return *out != NULL ? 0 : error_set(err, "http.alerts.tls.%s: %s", what, why.msg);
}

/* The start-up line: where, how clients are authenticated (never the token), and the insecure warning. */
static void log_start(const struct httpin *in, const struct config_http_alerts *cfg)
{
    char port[16];
    const char *auth = in->token && in->client_ca ? "token and client certificate"
                       : in->token                ? "token"
                       : in->client_ca            ? "client certificate"
                                                  : "none";
    snprintf(port, sizeof(port), "%d", httpd_port(in->server));
    log_kv(LOG_INFO, "http alerts listening", "listen", cfg->listen, "port", port, "path", cfg->path, "tls",
           in->cert ? "true" : "false", "auth", auth, "into", in->js ? "jetstream" : "queue", NULL);
    if (in->token == NULL && in->client_ca == NULL && cfg->insecure)
        log_kv(LOG_WARN,
               "http alerts: insecure: true: no token and no client certificate, anyone who can connect "
               "can submit alerts",
               "listen", cfg->listen, NULL);
}

int httpin_start(struct httpin **out, const struct config_http_alerts *cfg, struct dispatcher *d, struct workers *pool,
                 struct js_consumer *js, struct error *err)
{
    *out = NULL;
    struct httpin *in = calloc(1, sizeof(*in));
    if (in == NULL)
        return error_set(err, "out of memory");
    pthread_mutex_init(&in->lock, NULL);
    in->unauthorized_log = in->js_log = (struct log_throttle)LOG_THROTTLE_INIT;
    for (int i = 0; i < REFUSALS; i++)
        in->refused_log[i] = (struct log_throttle)LOG_THROTTLE_INIT;
    in->pool = pool;
    in->js = js;
    in->d = d;
    dispatcher_ref(d);
    in->path = strdup(cfg->path);
    in->token = cfg->token ? strdup(cfg->token) : NULL;
    in->token_len = cfg->token ? strlen(cfg->token) : 0;
    int rc = in->path == NULL || (cfg->token && in->token == NULL) ? error_set(err, "out of memory") : 0;
    if (rc == 0 &&
        (read_pem(&in->cert, cfg->tls_cert, "cert", err) != 0 || read_pem(&in->key, cfg->tls_key, "key", err) != 0 ||
         read_pem(&in->client_ca, cfg->tls_client_ca, "client_ca", err) != 0))
        rc = -1;
    struct httpd_tls tls = {.cert = in->cert, .key = in->key, .client_ca = in->client_ca};
    struct httpd_handler handler = {.request = on_request, .completed = on_completed, .arg = in};
    if (rc == 0)
        rc = httpd_serve(&in->server, cfg->listen, in->cert ? &tls : NULL, &handler, err);
    if (rc != 0) {
        httpin_stop(in);
        return -1;
    }
    log_start(in, cfg);
    *out = in;
    return 0;
}

void httpin_set_dispatcher(struct httpin *in, struct dispatcher *d)
{
    if (in == NULL)
        return;
    dispatcher_ref(d);
    pthread_mutex_lock(&in->lock);
    struct dispatcher *old = in->d;
    in->d = d;
    pthread_mutex_unlock(&in->lock);
    dispatcher_release(old);
}

int httpin_port(const struct httpin *in)
{
    return httpd_port(in->server);
}

void httpin_stop(struct httpin *in)
{
    if (in == NULL)
        return;
    httpd_stop(in->server);
    log_throttle_flush(&in->unauthorized_log, LOG_WARN, "http alerts: requests without the right token (401)");
    for (int i = REFUSE_TOO_LARGE; i < REFUSALS; i++)
        log_throttle_flush(&in->refused_log[i], LOG_WARN, refusal_logs[i]);
    log_throttle_flush(&in->js_log, LOG_WARN, "http alerts: not stored in the JetStream stream (503)");
    dispatcher_release(in->d);
    pthread_mutex_destroy(&in->lock);
    free(in->path);
    if (in->token != NULL)
        explicit_bzero(in->token, in->token_len);
    free(in->token);
    free(in->cert);
    if (in->key != NULL)
        explicit_bzero(in->key, strlen(in->key));
    free(in->key);
    free(in->client_ca);
    free(in);
}
