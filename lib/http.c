/*
 * http.c: HTTP requests with libcurl. Easy handles come from a small pool, one request at a time each,
 * and are reset before each request (options such as CUSTOMREQUEST would otherwise stick) while their
 * live connections stay for reuse; the pool is freed at exit, whatever thread used them. A batch drives
 * many requests from one thread with a multi handle (HTTP/2 multiplexed where the server offers it). URLs
 * may carry secrets (Slack webhooks): they never appear in an error.
 */
#include "playbookd/http.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POOL_MAX 256 /* up to 256 workers, each with a live connection */

/* Idle easy handles. A handle serves one request at a time and keeps its connections for the next. */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static CURL *pool[POOL_MAX];
static size_t pool_size;

int http_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void http_global_cleanup(void)
{
    pthread_mutex_lock(&pool_lock);
    while (pool_size > 0)
        curl_easy_cleanup(pool[--pool_size]);
    pthread_mutex_unlock(&pool_lock);
    curl_global_cleanup();
}

static CURL *handle_acquire(void)
{
    CURL *h = NULL;
    pthread_mutex_lock(&pool_lock);
    if (pool_size > 0)
        h = pool[--pool_size];
    pthread_mutex_unlock(&pool_lock);
    return h != NULL ? h : curl_easy_init();
}

static void handle_release(CURL *h)
{
    pthread_mutex_lock(&pool_lock);
    if (pool_size < POOL_MAX) {
        pool[pool_size++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&pool_lock);
    curl_easy_cleanup(h); /* NULL is a no-op */
}

static bool loopback_host(const char *host)
{
    unsigned char addr[4];
    if (strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0)
        return true;
    return inet_pton(AF_INET, host, addr) == 1 && addr[0] == 127;
}

/* 1 for https, 0 for http to loopback, -1 otherwise. */
static int url_kind(const char *url, struct error *err)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    int kind = -1;
    if (u == NULL) {
        error_set(err, "out of memory");
    } else if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
               curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
               curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        error_set(err, "not a valid URL");
    } else if (strcmp(scheme, "https") == 0) {
        kind = 1;
    } else if (strcmp(scheme, "http") == 0 && loopback_host(host)) {
        kind = 0;
    } else {
        error_set(err, "the URL must be https (plain http is allowed to loopback only)");
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return kind;
}

int http_url_check(const char *url, struct error *err)
{
    return url_kind(url, err) < 0 ? -1 : 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct http_response *resp = arg;
    size_t n = size * nmemb;
    if (resp->body_len + n > HTTP_MAX_RESPONSE)
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    char *grown = realloc(resp->body, resp->body_len + n + 1);
    if (grown == NULL)
        return 0;
    resp->body = grown;
    memcpy(resp->body + resp->body_len, data, n);
    resp->body_len += n;
    resp->body[resp->body_len] = 0;
    return n;
}

static struct curl_slist *request_headers(const struct http_request *req)
{
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
    h = h ? curl_slist_append(h, "Expect:") : NULL;
    if (h != NULL && req->content_type != NULL) {
        char line[128];
        snprintf(line, sizeof(line), "Content-Type: %s", req->content_type);
        struct curl_slist *more = curl_slist_append(h, line);
        if (more == NULL) {
            curl_slist_free_all(h);
            return NULL;
        }
        h = more;
    }
    for (size_t i = 0; h != NULL && i < req->n_headers; i++) {
        struct curl_slist *more = curl_slist_append(h, req->headers[i]);
        if (more == NULL)
            curl_slist_free_all(h);
        h = more;
    }
    return h;
}

static void set_pem(CURL *h, const struct http_pem *pem, CURLoption file_opt, CURLoption blob_opt)
{
    if (pem->data != NULL) {
        struct curl_blob blob = {.data = (void *)pem->data, .len = pem->len, .flags = CURL_BLOB_COPY};
        curl_easy_setopt(h, blob_opt, &blob);
    } else if (pem->file != NULL) {
        curl_easy_setopt(h, file_opt, pem->file);
    }
}

static void set_auth(CURL *h, const struct http_request *req)
{
    if (req->tls != NULL) {
        set_pem(h, &req->tls->ca, CURLOPT_CAINFO, CURLOPT_CAINFO_BLOB);
        set_pem(h, &req->tls->cert, CURLOPT_SSLCERT, CURLOPT_SSLCERT_BLOB);
        set_pem(h, &req->tls->key, CURLOPT_SSLKEY, CURLOPT_SSLKEY_BLOB);
    }
    if (req->bearer != NULL) {
        /* XOAUTH2_BEARER alone sends nothing: HTTPAUTH must say bearer. */
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
        curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, req->bearer);
    }
}

static void set_options(CURL *h, const struct http_request *req, struct curl_slist *headers, bool https,
                        struct http_response *resp)
{
    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, https ? "https" : "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "playbookd/" PLAYBOOKD_VERSION);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, req->timeout_ms > 0 ? req->timeout_ms : 10000L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms > 0 ? req->connect_timeout_ms : 5000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    set_auth(h, req);
    if (req->body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    }
    if (strcmp(req->method, "GET") == 0)
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    else if (strcmp(req->method, "POST") != 0 || req->body == NULL)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
}

/* Why a transfer ended without an answer. */
static const char *transfer_error(CURLcode rc)
{
    return rc == CURLE_WRITE_ERROR ? "response too large" : curl_easy_strerror(rc);
}

/* The status and Retry-After of the answer h received, into resp. */
static void read_status(CURL *h, struct http_response *resp)
{
    curl_off_t retry_after = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &retry_after);
    resp->retry_after_s = retry_after < 0 ? 0 : retry_after > 3600 ? 3600 : (long)retry_after; /* sane bounds */
}

int http_send(const struct http_request *req, struct http_response *resp, struct error *err)
{
    memset(resp, 0, sizeof(*resp));
    int kind = url_kind(req->url, err);
    if (kind < 0)
        return -1;
    CURL *h = handle_acquire();
    struct curl_slist *headers = request_headers(req);
    if (h == NULL || headers == NULL) {
        curl_slist_free_all(headers);
        curl_easy_cleanup(h);
        return error_set(err, "out of memory");
    }
    curl_easy_reset(h);
    set_options(h, req, headers, kind == 1, resp);
    /* One request at a time on its own connection: HTTP/2 would multiplex nothing and costs more CPU (a
     * third more per alert, measured with bench/run.py). */
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    CURLcode rc = curl_easy_perform(h);
    curl_slist_free_all(headers);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    if (rc != CURLE_OK) {
        handle_release(h);
        http_response_free(resp);
        return error_set(err, "%s", transfer_error(rc));
    }
    read_status(h, resp);
    handle_release(h);
    return 0;
}

void http_response_free(struct http_response *resp)
{
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}

/* One request of a batch: its handle, what the handle points to, and whom to tell. */
struct transfer {
    CURL *h;
    struct curl_slist *headers;
    char *body;
    struct http_response resp;
    http_done_fn done;
    void *arg;
    struct transfer *prev, *next; /* in the batch's list */
};

#define BATCH_IDLE_MAX 64

struct http_batch {
    CURLM *multi;
    struct transfer *in_flight; /* a list: curl 7.88 cannot list a multi's handles */
    size_t n_in_flight;
    CURL *idle[BATCH_IDLE_MAX]; /* handles for the next requests: a new one allocates about 80 KiB of buffers */
    size_t n_idle;
};

int http_batch_create(struct http_batch **out, struct error *err)
{
    struct http_batch *b = calloc(1, sizeof(*b));
    *out = NULL;
    if (b == NULL || (b->multi = curl_multi_init()) == NULL) {
        free(b);
        return error_set(err, "out of memory");
    }
    *out = b;
    return 0;
}

static void transfer_free(struct http_batch *b, struct transfer *t)
{
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        b->in_flight = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    b->n_in_flight--;
    curl_multi_remove_handle(b->multi, t->h);
    if (b->n_idle < BATCH_IDLE_MAX) {
        curl_easy_reset(t->h);
        b->idle[b->n_idle++] = t->h;
    } else {
        curl_easy_cleanup(t->h);
    }
    curl_slist_free_all(t->headers);
    http_response_free(&t->resp);
    free(t->body);
    free(t);
}

int http_batch_add(struct http_batch *b, const struct http_request *req, http_done_fn done, void *arg,
                   struct error *err)
{
    int kind = url_kind(req->url, err);
    if (kind < 0)
        return -1;
    struct transfer *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return error_set(err, "out of memory");
    struct http_request own = *req;
    own.body = t->body = req->body ? malloc(req->body_len + 1) : NULL; /* curl does not copy POSTFIELDS */
    t->h = b->n_idle > 0 ? b->idle[--b->n_idle] : curl_easy_init();
    t->headers = request_headers(req);
    t->done = done;
    t->arg = arg;
    const char *failed = NULL;
    if (t->h == NULL || t->headers == NULL || (req->body != NULL && t->body == NULL)) {
        failed = "out of memory";
    } else {
        if (t->body != NULL) {
            memcpy(t->body, req->body, req->body_len);
            t->body[req->body_len] = 0;
        }
        set_options(t->h, &own, t->headers, kind == 1, &t->resp);
        curl_easy_setopt(t->h, CURLOPT_PRIVATE, t);
        curl_easy_setopt(t->h, CURLOPT_PIPEWAIT, 1L); /* wait for a connection that multiplexes, not a new one */
        if (curl_multi_add_handle(b->multi, t->h) != CURLM_OK)
            failed = "cannot start the request";
    }
    if (failed != NULL) {
        curl_easy_cleanup(t->h);
        curl_slist_free_all(t->headers);
        free(t->body);
        free(t);
        return error_set(err, "%s", failed);
    }
    t->next = b->in_flight;
    if (t->next != NULL)
        t->next->prev = t;
    b->in_flight = t;
    b->n_in_flight++;
    return 0;
}

static void transfer_end(struct http_batch *b, struct transfer *t, CURLcode rc)
{
    if (rc != CURLE_OK) {
        t->done(t->arg, NULL, transfer_error(rc));
    } else {
        read_status(t->h, &t->resp);
        t->done(t->arg, &t->resp, NULL);
    }
    transfer_free(b, t);
}

size_t http_batch_run(struct http_batch *b, int timeout_ms)
{
    int running = 0, left = 0;
    curl_multi_poll(b->multi, NULL, 0, timeout_ms, NULL);
    curl_multi_perform(b->multi, &running);
    CURLMsg *m;
    while ((m = curl_multi_info_read(b->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct transfer *t = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        transfer_end(b, t, m->data.result);
    }
    return b->n_in_flight;
}

void http_batch_wakeup(struct http_batch *b)
{
    curl_multi_wakeup(b->multi);
}

void http_batch_destroy(struct http_batch *b)
{
    if (b == NULL)
        return;
    while (b->in_flight != NULL) {
        struct transfer *t = b->in_flight;
        t->done(t->arg, NULL, "cancelled");
        transfer_free(b, t);
    }
    while (b->n_idle > 0)
        curl_easy_cleanup(b->idle[--b->n_idle]);
    curl_multi_cleanup(b->multi);
    free(b);
}
