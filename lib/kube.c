/*
 * kube.c: calls to the Kubernetes API as a well-behaved controller makes them: TLS verified, the bearer
 * token re-read every minute and at once after a 401 (bound service-account tokens rotate) and never sent
 * when empty or malformed (the request fails, transient, instead), dryRun=All
 * on mutating requests in dry run, Status objects turned into readable reasons. Events are queued for the
 * senders of kube_event.c, started and stopped with the client.
 */
#include "playbookd/kube.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "playbookd/http.h"
#include "playbookd/log.h"
#include "playbookd/text.h"

struct kube {
    struct kube_endpoint ep;
    struct http_tls tls;
    long timeout_ms;
    pthread_mutex_t lock; /* guards token, token_read_at, token_invalid and token_err */
    char *token;          /* NULL when the file held no usable token: nothing is sent then */
    double token_read_at;
    bool token_invalid;         /* the last read found an empty or malformed token (logged once per episode) */
    struct error token_err;     /* why, without the token */
    struct kube_events *events; /* its queue and senders (kube_event.c) */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int kube_token_check(const char *where, char *text, size_t *len, struct error *err)
{
    size_t n = *len;
    while (n > 0 && (text[n - 1] == ' ' || text[n - 1] == '\t'))
        n--;
    if (n > 0 && text[n - 1] == '\n') /* one line end, as `echo` or an editor leaves it */
        n -= n > 1 && text[n - 2] == '\r' ? 2 : 1;
    while (n > 0 && (text[n - 1] == ' ' || text[n - 1] == '\t'))
        n--;
    text[n] = 0;
    *len = n;
    if (n == 0)
        return error_set(err, "%s: the token is empty", where);
    for (size_t i = 0; i < n; i++) /* CR or LF would add headers; a NUL would cut the token */
        if ((unsigned char)text[i] <= ' ' || text[i] == 0x7f)
            return error_set(err, "%s: the token holds a control character or space (byte %zu)", where, i + 1);
    return 0;
}

enum token_read { TOKEN_OK, TOKEN_UNREADABLE, TOKEN_INVALID };

/* Re-reads the token file. An unreadable file keeps the old token; a file holding no usable token drops it
 * (nothing is sent until the file is right again), logged once per episode. Called under the lock. */
static enum token_read reload_token(struct kube *k, struct error *err)
{
    size_t len;
    char *text = text_read_file(k->ep.token_file, KUBE_TOKEN_MAX, &len, err);
    if (text == NULL)
        return TOKEN_UNREADABLE;
    k->token_read_at = now_s();
    free(k->token);
    k->token = NULL;
    if (kube_token_check(k->ep.token_file, text, &len, err) != 0) {
        free(text);
        k->token_err = *err;
        if (!k->token_invalid)
            log_kv(LOG_ERROR, "the service account token cannot be used: requests fail until the file is right",
                   "error", err->msg, NULL);
        k->token_invalid = true;
        return TOKEN_INVALID;
    }
    k->token = text;
    k->token_invalid = false;
    return TOKEN_OK;
}

/* The token to send now, copied into buf (empty: none, client certificate). force: re-read the file first
 * (after a 401); a file that held no usable token is read again every time. -1 when there is no usable
 * token to send. */
static int current_token(struct kube *k, bool force, char *buf, size_t size, struct error *err)
{
    int rc = 0;
    buf[0] = 0;
    if (k->ep.token != NULL) {
        snprintf(buf, size, "%s", k->ep.token);
        return 0;
    }
    if (k->ep.token_file == NULL)
        return 0;
    pthread_mutex_lock(&k->lock);
    struct error why;
    if ((force || k->token == NULL || now_s() - k->token_read_at >= KUBE_TOKEN_MAX_AGE_S) &&
        reload_token(k, &why) == TOKEN_UNREADABLE && k->token != NULL)
        log_kv(LOG_WARN, "cannot re-read the token, using the previous one", "error", why.msg, NULL);
    if (k->token != NULL)
        snprintf(buf, size, "%s", k->token);
    else
        rc = error_set(err, "%s", k->token_invalid ? k->token_err.msg : "no service account token");
    pthread_mutex_unlock(&k->lock);
    return rc;
}

static void set_pem(struct http_pem *pem, const char *file, const char *data, size_t len)
{
    pem->file = file;
    pem->data = data;
    pem->len = len;
}

int kube_create(struct kube **out, const struct config_kube *cfg, struct error *err)
{
    struct kube *k = calloc(1, sizeof(*k));
    *out = NULL;
    if (k == NULL)
        return error_set(err, "out of memory");
    pthread_mutex_init(&k->lock, NULL);
    if (kube_endpoint_load(&k->ep, cfg, err) != 0 || (k->ep.token_file && reload_token(k, err) == TOKEN_UNREADABLE)) {
        kube_destroy(k);
        return -1;
    }
    set_pem(&k->tls.ca, k->ep.ca_file, k->ep.ca_data, k->ep.ca_len);
    set_pem(&k->tls.cert, k->ep.cert_file, k->ep.cert_data, k->ep.cert_len);
    set_pem(&k->tls.key, k->ep.key_file, k->ep.key_data, k->ep.key_len);
    k->timeout_ms = cfg->timeout_ms;
    if (kube_events_start(&k->events, k, k->timeout_ms, err) != 0) { /* last: the senders read k */
        kube_destroy(k);
        return -1;
    }
    *out = k;
    return 0;
}

void kube_destroy(struct kube *k)
{
    if (k == NULL)
        return;
    kube_events_stop(k->events); /* first: the senders still send */
    kube_endpoint_free(&k->ep);
    free(k->token);
    pthread_mutex_destroy(&k->lock);
    free(k);
}

const char *kube_server(const struct kube *k)
{
    return k->ep.server;
}

/* Appends src to the message, cut on a character boundary; false (nothing added) if it is not valid UTF-8. */
static bool message_add(struct kube_response *resp, const char *src)
{
    size_t used = strlen(resp->message);
    if (!text_utf8_valid(src, strlen(src)))
        return false;
    text_copy(resp->message + used, sizeof(resp->message) - used, src);
    return true;
}

/* "Reason: message" from a Status object, or the start of whatever the body was; valid UTF-8, as it is quoted
 * in reasons, logs and Events. */
static void status_message(struct kube_response *resp)
{
    const cJSON *status = kube_response_json(resp);
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(status, "reason");
    const cJSON *message = cJSON_GetObjectItemCaseSensitive(status, "message");
    resp->message[0] = 0;
    if (cJSON_IsString(message)) {
        if (cJSON_IsString(reason) && reason->valuestring[0] && message_add(resp, reason->valuestring))
            message_add(resp, ": ");
        message_add(resp, message->valuestring);
    } else if (resp->body != NULL) {
        message_add(resp, resp->body);
    }
}

int kube_prepare(struct kube *k, const char *method, const char *path, const char *content_type, const char *body,
                 bool dry_run, long timeout_ms, bool fresh_token, struct kube_prepared *out, struct error *err)
{
    int n = snprintf(out->url, sizeof(out->url), "%s%s%s", k->ep.server, path,
                     dry_run ? (strchr(path, '?') ? "&dryRun=All" : "?dryRun=All") : "");
    if (n < 0 || (size_t)n >= sizeof(out->url)) /* a cut URL could name another object, or lose dryRun */
        return error_set(err, "the request URL is too long");
    if (current_token(k, fresh_token, out->token, sizeof(out->token), err) != 0)
        return -1;
    out->http = (struct http_request){
        .method = method,
        .url = out->url,
        .content_type = content_type,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .bearer = out->token[0] ? out->token : NULL,
        .tls = &k->tls,
        .timeout_ms = timeout_ms > 0 ? timeout_ms : k->timeout_ms,
    };
    return 0;
}

void kube_response_take(struct kube_response *resp, struct http_response *http)
{
    resp->status = http->status;
    resp->retry_after_s = http->retry_after_s;
    resp->body = http->body; /* taken: parsed only if someone reads it */
    resp->body_len = http->body_len;
    http->body = NULL;
    http->body_len = 0;
    if (resp->status >= 300)
        status_message(resp);
}

/* Sends once; once more with a fresh token after a 401 from a token file (it may have rotated). */
static int kube_call(struct kube *k, const char *method, const char *path, const char *content_type, const char *body,
                     bool dry_run, long timeout_ms, struct kube_response *resp)
{
    struct kube_prepared *req = malloc(sizeof(*req));
    struct http_response http;
    struct error err;
    memset(resp, 0, sizeof(*resp));
    if (req == NULL) {
        text_copy(resp->message, sizeof(resp->message), "out of memory");
        return -1;
    }
    int rc = kube_prepare(k, method, path, content_type, body, dry_run, timeout_ms, false, req, &err);
    if (rc != 0) {
        text_copy(resp->message, sizeof(resp->message), err.msg);
    } else {
        rc = http_send(&req->http, &http, &err);
        if (rc == 0 && http.status == 401 && k->ep.token_file != NULL) {
            http_response_free(&http);
            rc = kube_prepare(k, method, path, content_type, body, dry_run, timeout_ms, true, req, &err);
            rc = rc == 0 ? http_send(&req->http, &http, &err) : rc;
        }
        if (rc != 0)
            text_copy(resp->message, sizeof(resp->message), err.msg);
        else
            kube_response_take(resp, &http);
    }
    free(req);
    return rc;
}

int kube_send_within(struct kube *k, const char *method, const char *path, const char *content_type, char *body,
                     bool dry_run, long timeout_ms, struct kube_response *resp)
{
    int rc = kube_call(k, method, path, content_type, body, dry_run, timeout_ms, resp);
    free(body);
    return rc;
}

int kube_send(struct kube *k, const char *method, const char *path, const char *content_type, char *body, bool dry_run,
              struct kube_response *resp)
{
    return kube_send_within(k, method, path, content_type, body, dry_run, 0, resp);
}

const struct cJSON *kube_response_json(struct kube_response *resp)
{
    if (resp->json == NULL && resp->body != NULL)
        resp->json = cJSON_ParseWithLength(resp->body, resp->body_len);
    return resp->json;
}

void kube_response_free(struct kube_response *resp)
{
    cJSON_Delete(resp->json);
    free(resp->body);
    resp->json = NULL;
    resp->body = NULL;
    resp->body_len = 0;
}

cJSON *kube_delete_options(bool dry_run, long grace_period_seconds, const char *uid)
{
    cJSON *opts = cJSON_CreateObject();
    if (dry_run)
        cJSON_AddItemToArray(cJSON_AddArrayToObject(opts, "dryRun"), cJSON_CreateString("All"));
    if (grace_period_seconds >= 0)
        cJSON_AddNumberToObject(opts, "gracePeriodSeconds", (double)grace_period_seconds);
    if (uid != NULL)
        cJSON_AddStringToObject(cJSON_AddObjectToObject(opts, "preconditions"), "uid", uid);
    return opts;
}

void kube_json_pointer(char *out, size_t size, const char *base, const char *key)
{
    int w = snprintf(out, size, "%s/", base);
    size_t n = w < 0 ? 0 : (size_t)w < size ? (size_t)w : size - 1;
    for (; *key && n + 3 < size; key++) {
        if (*key == '~' || *key == '/') {
            out[n++] = '~';
            out[n++] = *key == '~' ? '0' : '1';
        } else {
            out[n++] = *key;
        }
    }
    out[n] = 0;
}

bool kube_patch_test_failed(const cJSON *status)
{
    const cJSON *details = cJSON_GetObjectItemCaseSensitive(status, "details");
    const cJSON *causes = cJSON_GetObjectItemCaseSensitive(details, "causes"), *cause;
    cJSON_ArrayForEach (cause, causes) {
        const cJSON *message = cJSON_GetObjectItemCaseSensitive(cause, "message");
        if (cJSON_IsString(message) && strstr(message->valuestring, "testing value") != NULL)
            return true;
    }
    return false;
}

cJSON *kube_patch_metadata(cJSON *patch, const char *uid, const char *resource_version)
{
    cJSON *meta = cJSON_AddObjectToObject(patch, "metadata");
    if (meta != NULL && uid != NULL && cJSON_AddStringToObject(meta, "uid", uid) == NULL)
        return NULL;
    if (meta != NULL && resource_version != NULL &&
        cJSON_AddStringToObject(meta, "resourceVersion", resource_version) == NULL)
        return NULL;
    return meta;
}

bool kube_patch_uid_refused(struct kube_response *resp)
{
    if (resp->status != 422)
        return false;
    const cJSON *details = cJSON_GetObjectItemCaseSensitive(kube_response_json(resp), "details");
    const cJSON *causes = cJSON_GetObjectItemCaseSensitive(details, "causes"), *cause;
    cJSON_ArrayForEach (cause, causes) {
        const cJSON *field = cJSON_GetObjectItemCaseSensitive(cause, "field");
        if (cJSON_IsString(field) && strcmp(field->valuestring, "metadata.uid") == 0)
            return true;
    }
    return false;
}

void kube_record_event(struct kube *k, const struct kube_event *ev)
{
    kube_events_record(k->events, ev);
}

bool kube_name_label(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

bool kube_name_subdomain(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253)
        return false;
    for (const char *p = s;;) {
        size_t len = strcspn(p, ".");
        char label[64];
        if (len == 0 || len > 63)
            return false;
        memcpy(label, p, len);
        label[len] = 0;
        if (!kube_name_label(label))
            return false;
        if (p[len] == 0)
            return true;
        p += len + 1;
    }
}

bool kube_label_value(const char *s)
{
    size_t n = strlen(s);
    if (n == 0)
        return true;
    if (n > 63 || strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != n)
        return false;
    return strspn(s, "-_.") == 0 && strchr("-_.", s[n - 1]) == NULL;
}

bool kube_qualified_name(const char *s)
{
    const char *slash = strchr(s, '/');
    const char *name = slash ? slash + 1 : s;
    if (slash != NULL) {
        char prefix[254];
        size_t n = (size_t)(slash - s);
        if (n == 0 || n >= sizeof(prefix))
            return false;
        memcpy(prefix, s, n);
        prefix[n] = 0;
        if (!kube_name_subdomain(prefix))
            return false;
    }
    return name[0] != 0 && kube_label_value(name);
}

int kube_query_escape(char *out, size_t size, const char *in)
{
    size_t n = 0;
    for (; *in; in++) {
        bool plain = strchr("-_.~", *in) != NULL || (*in >= '0' && *in <= '9') || (*in >= 'a' && *in <= 'z') ||
                     (*in >= 'A' && *in <= 'Z');
        if (n + 4 > size)
            return -1;
        n += (size_t)(plain ? snprintf(out + n, size - n, "%c", *in)
                            : snprintf(out + n, size - n, "%%%02X", (unsigned char)*in));
    }
    if (size == 0)
        return -1;
    out[n] = 0;
    return 0;
}

long kube_timeout_ms(const struct kube *k)
{
    return k->timeout_ms;
}
