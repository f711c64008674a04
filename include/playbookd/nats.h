/*
 * nats.h: NATS for playbookd and falco-nats (cnats). A link is one connection that reconnects forever
 * and logs what happens to it. Subscriptions are a set per config: one subscription per topic pattern,
 * all in one queue group (the configured one, or one private to this process), so that a message is
 * delivered once to the process however many of its patterns match, also while a reloaded config's set
 * replaces the old one.
 */
#ifndef PLAYBOOKD_NATS_H
#define PLAYBOOKD_NATS_H

#include <nats/nats.h>
#include <stdbool.h>

#include "playbookd/config.h"
#include "playbookd/dispatch.h"
#include "playbookd/error.h"

struct nats_link;

/* Connects as `name`, or goes on trying in the background when no server answers yet. */
int nats_link_create(struct nats_link **out, const struct config_nats *n, const char *name, struct error *err);
/* Flushes what is buffered, waiting up to timeout_ms for a reconnect if need be, and closes. NULL: no-op. */
void nats_link_destroy(struct nats_link *l, long timeout_ms);
bool nats_link_connected(struct nats_link *l);
/* True once the connection is closed for good: cnats will not reconnect (a refused login, for instance). */
bool nats_link_closed(struct nats_link *l);
natsConnection *nats_link_connection(struct nats_link *l);

struct nats_subscriptions;
struct workers;

/*
 * Subscribes to every pattern of d's config->subscriptions (the topics' and rules' subject patterns, one
 * covered by another left out), each with the config's pending limits; each message is
 * parsed, matched and handed to pool by d (waiting while the pool is full: the backlog then stays in
 * cnats, up to the pending limits). The set holds a reference to d.
 */
int nats_subscribe(struct nats_subscriptions **out, struct nats_link *l, struct dispatcher *d, struct workers *pool,
                   struct error *err);

/* Counts the alerts cnats dropped past the pending limits since the last call, in the metrics and in a log
 * line at most once a second. Call it periodically. NULL: no-op. */
void nats_poll_dropped(struct nats_subscriptions *s);

/*
 * Stops taking messages: those already received are handed to the pool for up to timeout_ms (negative:
 * however long it takes, as a reload does), then what is left is dropped and counted. NULL: no-op.
 */
void nats_drain(struct nats_subscriptions *s, long timeout_ms);
/* Waits for the handler in flight to return, releases the dispatcher and frees. NULL: no-op. */
void nats_subscriptions_free(struct nats_subscriptions *s);

#endif
