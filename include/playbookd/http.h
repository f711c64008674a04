/*
 * http.h: a small libcurl wrapper. Easy handles are pooled: each serves one request at a time, keeps its
 * connections alive for the next, and no connection cache is shared between handles. https only, except plain http to
 * loopback (tests and local sidecars).
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

#endif
