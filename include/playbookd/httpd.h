/* httpd.h: the health and metrics endpoint (libmicrohttpd): /healthz, /readyz and /metrics. */
#ifndef PLAYBOOKD_HTTPD_H
#define PLAYBOOKD_HTTPD_H

#include <stdbool.h>
#include <sys/socket.h>

#include "playbookd/error.h"

struct httpd;

/* Whether the process is ready for work (/readyz answers 200, else 503). */
typedef bool (*httpd_ready_fn)(void *arg);

/* Parses "HOST:PORT" ("0.0.0.0:8080", "[::]:8080", ":8080" for all interfaces); numeric hosts only. */
int httpd_parse_listen(const char *listen, struct sockaddr_storage *addr, struct error *err);

int httpd_start(struct httpd **out, const char *listen, httpd_ready_fn ready, void *arg, struct error *err);
/* The port bound (useful with port 0). */
int httpd_port(const struct httpd *h);
void httpd_stop(struct httpd *h); /* NULL is a no-op */

#endif
