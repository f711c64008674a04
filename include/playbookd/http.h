/*
 * http.h: a small libcurl wrapper. http_send: one request at a time from any thread, on pooled easy
 * handles that each keep their connection alive (no connection cache is shared between threads). A
 * batch: many requests in flight from one thread, on a curl multi handle whose connections are reused
 * across its requests and, where the server speaks HTTP/2 (an API server does), multiplexed as streams on
 * one connection. https only, except plain http to loopback (tests and local sidecars).
 */
#ifndef PLAYBOOKD_HTTP_H
#define PLAYBOOKD_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "playbookd/error.h"

#define HTTP_MAX_RESPONSE (4 * 1024 * 1024)

/* PEM in memory or in a file; a blob wins over a file. */
struct http_pem {
    const char *file;
    const char *data;
    size_t len;
};

/* TLS material beyond the system's CAs. Peers are always verified. */
struct http_tls {
    struct http_pem ca;   /* trust only this CA */
    struct http_pem cert; /* client certificate */
    struct http_pem key;  /* its key */
};

struct http_request {
    const char *method; /* "GET", "POST", "PATCH", "DELETE" */
    const char *url;
    const char *content_type; /* for the body, or NULL */
    const char *body;
    size_t body_len;
    const char *bearer;         /* Authorization: Bearer, or NULL */
    const char *const *headers; /* n_headers more lines "Name: value", checked by the caller (they may hold secrets) */
    size_t n_headers;
    const struct http_tls *tls; /* or NULL */
    long timeout_ms;            /* whole request; 0: 10 s */
    long connect_timeout_ms;    /* 0: 5 s */
};

struct http_response {
    long status; /* 0 when no response arrived */
    char *body;  /* NUL-terminated, malloc'd */
    size_t body_len;
    long retry_after_s; /* Retry-After, or 0 */
};

int http_global_init(void);
void http_global_cleanup(void);

/* Checks that url is https, or http to a loopback host. The URL itself never appears in err. */
int http_url_check(const char *url, struct error *err);

/* Sends the request; 0 when a response arrived (any status), -1 on a transport error (reason in err). */
int http_send(const struct http_request *req, struct http_response *resp, struct error *err);
void http_response_free(struct http_response *resp);

struct http_batch;

/* Called once for each request of a batch, from http_batch_run: resp when an answer came (its body may be
 * taken: set resp->body to NULL), else resp is NULL and error says why. */
typedef void (*http_done_fn)(void *arg, struct http_response *resp, const char *error);

int http_batch_create(struct http_batch **out, struct error *err);
/* Starts req; what req points to may go once this returns. 0, or -1 with the reason in err. */
int http_batch_add(struct http_batch *b, const struct http_request *req, http_done_fn done, void *arg,
                   struct error *err);
/* Moves the requests on, waiting up to timeout_ms for progress or a wakeup; calls done for each that
 * ended. Returns how many are still in flight. */
size_t http_batch_run(struct http_batch *b, int timeout_ms);
/* Ends the wait of http_batch_run early. The one call that any thread may make. */
void http_batch_wakeup(struct http_batch *b);
/* Ends what is still in flight (done with error "cancelled") and frees the batch. NULL is a no-op. */
void http_batch_destroy(struct http_batch *b);

#endif
