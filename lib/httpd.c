/*
 * httpd.c: the health and metrics endpoint. /healthz answers 200 while the process runs, /readyz 200
 * once it is ready (config loaded, NATS connected) and 503 before, /metrics the Prometheus text. GET and
 * HEAD only. libmicrohttpd's one internal thread serves it with epoll; this file keeps a table of the open
 * connections (notified by libmicrohttpd) to bound them per address and in total, and a watchdog thread
 * that closes connections past their deadline (httpd.h). A connection is closed with shutdown() on its
 * socket, under the table's lock: libmicrohttpd notifies the close (and frees the slot) before it closes
 * the socket, so the descriptor shut is always the connection's own.
 */
#include "playbookd/httpd.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>

#include "playbookd/log.h"
#include "playbookd/metrics.h"

#define SLOTS (HTTPD_MAX_CONNECTIONS + 16) /* libmicrohttpd's own limit: room for closes under way */

enum close_reason { CLOSE_PER_IP, CLOSE_TOTAL, CLOSE_DEADLINE, CLOSE_REASONS };

#define STR_(x) #x
#define STR(x) STR_(x)

static const struct {
    const char *metric, *log;
} close_names[CLOSE_REASONS] = {
    {"per_ip_limit", "http: closed the oldest connection of an address over " STR(HTTPD_MAX_PER_IP)},
    {"total_limit", "http: closed the oldest connection: over " STR(HTTPD_MAX_CONNECTIONS) " connections"},
    {"deadline", "http: closed a connection slower than " STR(HTTPD_REQUEST_DEADLINE_S) " s to send its request "
                                                                                        "or take the answer"},
};

/* One open connection. */
struct slot {
    bool used;
    bool closing; /* shut down by us, its close not yet notified */
    bool busy;    /* its request arrived and is being answered */
    int fd;
    struct sockaddr_storage addr;
    double since; /* opened, or its previous request ended */
};

struct httpd {
    struct MHD_Daemon *daemon;
    struct httpd_handler handler;
    bool verify_clients;  /* HTTPS with client_ca: a client without a trusted certificate fails the handshake */
    httpd_ready_fn ready; /* the probes' */
    void *arg;
    pthread_mutex_t lock; /* guards slots and stopping */
    pthread_cond_t wake;
    bool stopping;
    struct slot slots[SLOTS];
    pthread_t watchdog;
    bool watchdog_started;
    struct log_throttle closed_log[CLOSE_REASONS];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

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

bool httpd_loopback(const struct sockaddr_storage *addr)
{
    if (addr->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)addr)->sin_addr.s_addr) >> 24) == 127;
    if (addr->ss_family != AF_INET6)
        return false;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)addr)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

enum MHD_Result httpd_reply(struct MHD_Connection *conn, unsigned int status, const char *type, const char *body,
                            size_t len, const char *header, const char *value)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    if (header != NULL)
        MHD_add_response_header(r, header, value);
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned int status, const char *text)
{
    return httpd_reply(conn, status, "text/plain; charset=utf-8", text, strlen(text), NULL, NULL);
}

static bool same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr, &((const struct sockaddr_in6 *)b)->sin6_addr,
                      sizeof(struct in6_addr)) == 0;
    return true; /* an unknown family: one bucket */
}

/* Shuts s down (libmicrohttpd then sees the end of it and closes it), counted and logged. Under h->lock. */
static void close_slot(struct httpd *h, struct slot *s, enum close_reason why)
{
    s->closing = true;
    shutdown(s->fd, SHUT_RDWR);
    metrics_http_closed(close_names[why].metric);
    log_throttled(&h->closed_log[why], LOG_WARN, close_names[why].log, 1);
}

/* The connection to close for a newcomer: the oldest open one (same address as `like`, if given) other
 * than the newcomer, preferably one still waiting for its request; NULL if there is none. Under h->lock. */
static struct slot *oldest(struct httpd *h, const struct slot *newcomer, const struct sockaddr_storage *like,
                           size_t *count)
{
    struct slot *best = NULL;
    *count = 0;
    for (struct slot *s = h->slots; s < h->slots + SLOTS; s++) {
        if (!s->used || s->closing || (like != NULL && !same_address(&s->addr, like)))
            continue;
        (*count)++;
        if (s != newcomer &&
            (best == NULL || (best->busy && !s->busy) || (best->busy == s->busy && s->since < best->since)))
            best = s;
    }
    return best;
}

/* A new connection: makes room for it within the per-address and total limits. Under h->lock. */
static void make_room(struct httpd *h, struct slot *newcomer)
{
    size_t n;
    struct slot *victim = oldest(h, newcomer, &newcomer->addr, &n);
    if (n > HTTPD_MAX_PER_IP && victim != NULL)
        close_slot(h, victim, CLOSE_PER_IP);
    victim = oldest(h, newcomer, NULL, &n);
    if (n > HTTPD_MAX_CONNECTIONS && victim != NULL)
        close_slot(h, victim, CLOSE_TOTAL);
}

/*
 * The TLS session, set up but not yet shaken hands: the client must present a certificate, verified
 * during the handshake against the trusted CA (libmicrohttpd alone only asks for one, and checks nothing).
 */
static void require_client_certificate(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *tls = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (tls == NULL || tls->tls_session == NULL)
        return;
    gnutls_certificate_server_set_request(tls->tls_session, GNUTLS_CERT_REQUIRE);
    gnutls_session_set_verify_cert(tls->tls_session, NULL, 0);
}

/* Once more, per request: the peer's certificate chain verified (a handshake that skipped it never gets here). */
static bool client_verified(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *tls = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    unsigned int status = 1;
    return tls != NULL && tls->tls_session != NULL &&
           gnutls_certificate_verify_peers2(tls->tls_session, &status) == GNUTLS_E_SUCCESS && status == 0;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct httpd *h = cls;
    pthread_mutex_lock(&h->lock);
    if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context != NULL) {
        memset(*socket_context, 0, sizeof(struct slot));
        metrics_http_connections(-1);
    } else if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *addr = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        struct slot *s = h->slots;
        while (s < h->slots + SLOTS && s->used)
            s++;
        *socket_context = NULL;
        if (s < h->slots + SLOTS && fd != NULL) { /* libmicrohttpd holds at most SLOTS connections */
            *s = (struct slot){.used = true, .fd = fd->connect_fd, .since = now_s()};
            if (addr != NULL && addr->client_addr->sa_family == AF_INET6)
                memcpy(&s->addr, addr->client_addr, sizeof(struct sockaddr_in6));
            else if (addr != NULL && addr->client_addr->sa_family == AF_INET)
                memcpy(&s->addr, addr->client_addr, sizeof(struct sockaddr_in));
            *socket_context = s;
            metrics_http_connections(1);
            make_room(h, s);
        }
        if (h->verify_clients)
            require_client_certificate(conn);
    }
    pthread_mutex_unlock(&h->lock);
}

/* A request arrived (busy) or ended (its deadline starts again for the next one on the connection). */
static void set_busy(struct httpd *h, struct MHD_Connection *conn, bool busy)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    pthread_mutex_lock(&h->lock);
    struct slot *s = info ? info->socket_context : NULL;
    if (s != NULL) {
        s->busy = busy;
        if (!busy)
            s->since = now_s();
    }
    pthread_mutex_unlock(&h->lock);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode code)
{
    struct httpd *h = cls;
    (void)code;
    set_busy(h, conn, false);
    if (h->handler.completed != NULL && *con_cls != NULL)
        h->handler.completed(h->handler.arg, *con_cls);
    *con_cls = NULL;
}

/* Once a second: closes the connections past their deadline and logs the counts not logged yet. */
static void *watchdog_main(void *arg)
{
    struct httpd *h = arg;
    pthread_mutex_lock(&h->lock);
    while (!h->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&h->wake, &h->lock, &until);
        double now = now_s();
        for (struct slot *s = h->slots; s < h->slots + SLOTS; s++)
            if (s->used && !s->closing && now - s->since > HTTPD_REQUEST_DEADLINE_S)
                close_slot(h, s, CLOSE_DEADLINE);
        for (int r = 0; r < CLOSE_REASONS; r++)
            log_throttle_flush(&h->closed_log[r], LOG_WARN, close_names[r].log);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

/* The probes: /healthz, /readyz and /metrics. */
static enum MHD_Result probes_request(void *arg, struct MHD_Connection *conn, const char *url, const char *method,
                                      const char *upload_data, size_t *upload_data_size, void **req)
{
    (void)upload_data, (void)upload_data_size, (void)req;
    struct httpd *h = arg;
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
        struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
        if (r == NULL) {
            free(text);
            return MHD_NO;
        }
        MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
        enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return rc;
    }
    return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found: try /healthz, /readyz or /metrics\n");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    struct httpd *h = cls;
    set_busy(h, conn, true);
    if (h->verify_clients && *con_cls == NULL && !client_verified(conn)) /* at the request's headers */
        return reply_text(conn, MHD_HTTP_FORBIDDEN, "a client certificate signed by the trusted CA is needed\n");
    return h->handler.request(h->handler.arg, conn, url, method, upload_data, upload_data_size, con_cls);
}

/* libmicrohttpd's options: the address, the bounds, the notifications and, for HTTPS, the PEM texts. */
static size_t daemon_options(struct httpd *h, const struct sockaddr_storage *addr, const struct httpd_tls *tls,
                             struct MHD_OptionItem opts[12])
{
    size_t n = 0;
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, (void *)addr};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, SLOTS, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, HTTPD_IDLE_TIMEOUT_S, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT, HTTPD_MEMORY_PER_CONNECTION, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, h};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, h};
    if (tls != NULL) {
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)tls->cert};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)tls->key};
        if (tls->client_ca != NULL)
            opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, (void *)tls->client_ca};
    }
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    return n;
}

/* Starts libmicrohttpd and the watchdog for h; frees h on failure. */
static int serve(struct httpd *h, const char *listen, const struct httpd_tls *tls, struct httpd **out,
                 struct error *err)
{
    struct sockaddr_storage addr;
    struct MHD_OptionItem opts[12];
    if (httpd_parse_listen(listen, &addr, err) != 0) {
        httpd_stop(h);
        return -1;
    }
    h->verify_clients = tls != NULL && tls->client_ca != NULL;
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                         (addr.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0) | (tls != NULL ? MHD_USE_TLS : 0);
    daemon_options(h, &addr, tls, opts);
    h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (h->daemon == NULL) {
        httpd_stop(h);
        return error_set(err, "cannot listen on %s%s", listen,
                         tls ? " (or the TLS certificate, key or CA is bad)" : "");
    }
    h->watchdog_started = pthread_create(&h->watchdog, NULL, watchdog_main, h) == 0;
    if (!h->watchdog_started) {
        httpd_stop(h);
        return error_set(err, "cannot start the http watchdog");
    }
    *out = h;
    return 0;
}

static struct httpd *httpd_new(const struct httpd_handler *handler)
{
    struct httpd *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->handler = *handler;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->wake, NULL);
    for (int r = 0; r < CLOSE_REASONS; r++)
        h->closed_log[r] = (struct log_throttle)LOG_THROTTLE_INIT;
    return h;
}

int httpd_serve(struct httpd **out, const char *listen, const struct httpd_tls *tls,
                const struct httpd_handler *handler, struct error *err)
{
    *out = NULL;
    struct httpd *h = httpd_new(handler);
    if (h == NULL)
        return error_set(err, "out of memory");
    return serve(h, listen, tls, out, err);
}

int httpd_start(struct httpd **out, const char *listen, httpd_ready_fn ready, void *arg, struct error *err)
{
    struct httpd_handler probes = {.request = probes_request};
    *out = NULL;
    struct httpd *h = httpd_new(&probes);
    if (h == NULL)
        return error_set(err, "out of memory");
    h->handler.arg = h;
    h->ready = ready;
    h->arg = arg;
    return serve(h, listen, NULL, out, err);
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
    if (h->watchdog_started) {
        pthread_mutex_lock(&h->lock);
        h->stopping = true;
        pthread_cond_signal(&h->wake);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->watchdog, NULL);
    }
    if (h->daemon != NULL)
        MHD_stop_daemon(h->daemon); /* notifies every close: the table is still there */
    for (int r = 0; r < CLOSE_REASONS; r++)
        log_throttle_flush(&h->closed_log[r], LOG_WARN, close_names[r].log);
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->lock);
    free(h);
}
