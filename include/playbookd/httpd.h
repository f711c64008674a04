/*
 * httpd.h: the health and metrics endpoint (libmicrohttpd): /healthz, /readyz and /metrics, and the
 * machinery other endpoints (the alert input, httpin.h) are served with, each on its own address.
 *
 * It stays available to probes under abuse (slow-loris clients, floods from one address, which is often the
 * probe's own: the node's address). One event-driven thread (epoll) serves every connection, so a slow one
 * holds no thread. A connection must deliver its request and take its answer within
 * HTTPD_REQUEST_DEADLINE_S (from when it opened or its previous request ended), whatever bytes it trickles.
 * An address holding more than HTTPD_MAX_PER_IP connections, or the endpoint holding more than
 * HTTPD_MAX_CONNECTIONS, has its oldest connection closed (preferably one still waiting for its request) to
 * make room for the new one: a newcomer (a probe) always gets a slot, never a refusal. Every close is
 * counted (playbookd_http_connections_closed_total{reason}) and logged at most once a second with the count.
 */
#ifndef PLAYBOOKD_HTTPD_H
#define PLAYBOOKD_HTTPD_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "playbookd/error.h"

struct httpd;

#define HTTPD_MAX_CONNECTIONS 64
#define HTTPD_MAX_PER_IP 16
#define HTTPD_REQUEST_DEADLINE_S 5
#define HTTPD_IDLE_TIMEOUT_S 5                  /* libmicrohttpd's: no byte either way for this long */
#define HTTPD_MEMORY_PER_CONNECTION (16 * 1024) /* request line and headers must fit */

/* Whether the process is ready for work (/readyz answers 200, else 503). */
typedef bool (*httpd_ready_fn)(void *arg);

/* Parses "HOST:PORT" ("0.0.0.0:8080", "[::]:8080", ":8080" for all interfaces); numeric hosts only. */
int httpd_parse_listen(const char *listen, struct sockaddr_storage *addr, struct error *err);
/* True for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
bool httpd_loopback(const struct sockaddr_storage *addr);

/* The probes and metrics endpoint. */
int httpd_start(struct httpd **out, const char *listen, httpd_ready_fn ready, void *arg, struct error *err);

/* HTTPS: PEM texts (kept by the caller while the server runs). client_ca: every client must present a
 * certificate it signed, verified during the TLS handshake (a client without one fails the handshake). */
struct httpd_tls {
    const char *cert, *key, *client_ca; /* client_ca may be NULL */
};

/*
 * Another endpoint on the same machinery (bounds, deadline, watchdog): request is libmicrohttpd's access
 * handler, called from the server's one thread; what it keeps per request in *req is handed to completed
 * when the request ends (also when it is cut short).
 */
struct httpd_handler {
    enum MHD_Result (*request)(void *arg, struct MHD_Connection *conn, const char *url, const char *method,
                               const char *upload_data, size_t *upload_data_size, void **req);
    void (*completed)(void *arg, void *req);
    void *arg;
};
int httpd_serve(struct httpd **out, const char *listen, const struct httpd_tls *tls,
                const struct httpd_handler *handler, struct error *err);

/* Queues an answer: body copied; one extra header when header is not NULL. */
enum MHD_Result httpd_reply(struct MHD_Connection *conn, unsigned int status, const char *type, const char *body,
                            size_t len, const char *header, const char *value);
/* The port bound (useful with port 0). */
int httpd_port(const struct httpd *h);
void httpd_stop(struct httpd *h); /* NULL is a no-op */

#endif
