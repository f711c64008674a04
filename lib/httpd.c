/*
 * httpd.c: the health and metrics endpoint. /healthz answers 200 while the process runs, /readyz 200
 * once it is ready (config loaded, NATS connected) and 503 before, /metrics the Prometheus text. GET and
 * HEAD only; libmicrohttpd's own thread serves it, with a connection limit and timeout.
 */
#include "playbookd/httpd.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/metrics.h"

struct httpd {
    struct MHD_Daemon *daemon;
    httpd_ready_fn ready;
    void *arg;
};

int httpd_parse_listen(const char *listen, struct sockaddr_storage *addr, struct error *err)
{
    const char *colon = strrchr(listen, ':');
    char host[64];
    memset(addr, 0, sizeof(*addr));
    if (colon == NULL)
        return error_set(err, "expected HOST:PORT, e.g. 0.0.0.0:8080");
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == 0 || *end != 0 || port < 0 || port > 65535)
        return error_set(err, "the port must be 0 to 65535");
    size_t n = (size_t)(colon - listen);
    if (n >= sizeof(host))
        return error_set(err, "the host is too long");
    memcpy(host, listen, n);
    host[n] = 0;
    struct sockaddr_in *v4 = (struct sockaddr_in *)addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)addr;
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host[n - 1] = 0;
        if (inet_pton(AF_INET6, host + 1, &v6->sin6_addr) != 1)
            return error_set(err, "not an IPv6 address");
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        return 0;
    }
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    if (n > 0 && inet_pton(AF_INET, host, &v4->sin_addr) != 1)
        return error_set(err, "not an IPv4 address (IPv6 goes in brackets)");
    return 0; /* an empty host: INADDR_ANY */
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status, const char *type, char *body, size_t len,
                             enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned int status, const char *text)
{
    return reply(conn, status, "text/plain; charset=utf-8", (char *)text, strlen(text), MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version, (void)upload_data, (void)upload_data_size, (void)con_cls;
    struct httpd *h = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    if (strcmp(url, "/healthz") == 0)
        return reply_text(conn, MHD_HTTP_OK, "ok\n");
    if (strcmp(url, "/readyz") == 0)
        return h->ready(h->arg) ? reply_text(conn, MHD_HTTP_OK, "ready\n")
                                : reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready: NATS is not connected\n");
    if (strcmp(url, "/metrics") == 0) {
        size_t len;
        char *text = metrics_render(&len);
        if (text == NULL)
            return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
        return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len, MHD_RESPMEM_MUST_FREE);
    }
    return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found: try /healthz, /readyz or /metrics\n");
}

int httpd_start(struct httpd **out, const char *listen, httpd_ready_fn ready, void *arg, struct error *err)
{
    struct sockaddr_storage addr;
    *out = NULL;
    if (httpd_parse_listen(listen, &addr, err) != 0)
        return -1;
    struct httpd *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return error_set(err, "out of memory");
    h->ready = ready;
    h->arg = arg;
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | (addr.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                 MHD_OPTION_CONNECTION_LIMIT, 32U, MHD_OPTION_CONNECTION_TIMEOUT, 10U, MHD_OPTION_END);
    if (h->daemon == NULL) {
        free(h);
        return error_set(err, "cannot listen on %s", listen);
    }
    *out = h;
    return 0;
}

int httpd_port(const struct httpd *h)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : -1;
}

void httpd_stop(struct httpd *h)
{
    if (h == NULL)
        return;
    MHD_stop_daemon(h->daemon);
    free(h);
}
