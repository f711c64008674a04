/*
 * httpd.h: the health and metrics endpoint (libmicrohttpd): /healthz, /readyz and /metrics.
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

#include <stdbool.h>
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

int httpd_start(struct httpd **out, const char *listen, httpd_ready_fn ready, void *arg, struct error *err);
/* The port bound (useful with port 0). */
int httpd_port(const struct httpd *h);
void httpd_stop(struct httpd *h); /* NULL is a no-op */

#endif
