/*
 * httpin.h: the alert input over HTTP(S) (http.alerts), for Falco's http_output and falcosidekick's webhook
 * and Talon outputs. A POST (or PUT) to the configured path carries one alert as JSON, or several, one per
 * line; each is matched and queued as an alert from NATS would be, its subject derived from it.
 *
 * Answers (a JSON body {"accepted": N} and, on an error, "error": "line L: reason"):
 *   200  every alert of the body is queued (JetStream: stored in the stream, acknowledged)
 *   400  line L is not a valid alert: the lines before it are queued, L and the rest are not
 *   401  missing or wrong bearer token (WWW-Authenticate: Bearer)
 *   404  another path; 405 another method (Allow: POST, PUT); 415 a Content-Encoding other than identity
 *   413  a body over HTTPIN_MAX_BODY
 *   503  the queue is full (JetStream: the stream did not acknowledge), Retry-After: 1; the lines before are
 *        queued
 * With tls.client_ca, a client without a certificate signed by it fails the TLS handshake. The server is
 * httpd's (bounds per address and in total, a request deadline) on an address of its own, so the probes
 * never wait behind it.
 */
#ifndef PLAYBOOKD_HTTPIN_H
#define PLAYBOOKD_HTTPIN_H

#include "playbookd/alert.h"
#include "playbookd/config.h"
#include "playbookd/error.h"

#define HTTPIN_MAX_BODY ALERT_MAX_BYTES       /* a request's body, batch or not */
#define HTTPIN_MAX_BUFFERED (8 * 1024 * 1024) /* bodies held at once, all requests together: past it, 503 */
#define HTTPIN_RETRY_AFTER_S "1"

struct httpin;
struct dispatcher;
struct workers;
struct js_consumer;

/*
 * Starts the input on cfg->listen: alerts go to pool through d (a reference is taken) or, with js not
 * NULL, into the JetStream stream through js. Reads the TLS files named by cfg.
 */
int httpin_start(struct httpin **out, const struct config_http_alerts *cfg, struct dispatcher *d, struct workers *pool,
                 struct js_consumer *js, struct error *err);
/* The dispatcher for the alerts received from now on (a reload): takes a reference, drops the old one. */
void httpin_set_dispatcher(struct httpin *in, struct dispatcher *d);
int httpin_port(const struct httpin *in);
/* Stops taking requests (those under way end first) and frees. NULL: no-op. */
void httpin_stop(struct httpin *in);

/* What taking one alert of a body came to. */
enum httpin_verdict { HTTPIN_ACCEPTED, HTTPIN_REJECTED, HTTPIN_BUSY };
/* Takes one line of a body (never blank; not NUL-terminated): queues or publishes it, or says why not. */
typedef enum httpin_verdict (*httpin_take_fn)(void *arg, const char *line, size_t len, struct error *why);

/* The answer to a body: its status (200, 400 or 503 as above), the alerts taken, and on an error its text. */
struct httpin_answer {
    unsigned status;
    size_t accepted;
    char error[ERROR_MAX + 32]; /* "line L: reason", or "" */
};

/*
 * The alerts of a body, one per line (blank lines passed over), handed to take in order until one is not
 * taken: 200 when every one was and there was one, 400 when one was rejected or there was none, 503 when
 * one could not be taken now. Pure but for take: the HTTP handler's core, fuzzed (tests/fuzz/fuzz_httpin.c).
 */
void httpin_body(const char *body, size_t len, httpin_take_fn take, void *arg, struct httpin_answer *out);

#endif
