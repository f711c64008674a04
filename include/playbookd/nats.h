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
/* Flushes what is buffered (up to timeout_ms) and closes. NULL is a no-op. */
void nats_link_destroy(struct nats_link *l, long timeout_ms);
bool nats_link_connected(struct nats_link *l);
natsConnection *nats_link_connection(struct nats_link *l);

struct nats_subscriptions;

/* Subscribes to every topic pattern of cfg; each message is handed to d. */
int nats_subscribe(struct nats_subscriptions **out, struct nats_link *l, const struct config *cfg, struct dispatcher *d,
                   struct error *err);
/*
 * Stops taking messages, lets those already received be handled for up to timeout_ms (the rest are
 * dropped and counted in the log), then stops the dispatcher's retries, waits for the attempt in flight
 * to end, and frees. NULL: no-op.
 */
void nats_unsubscribe(struct nats_subscriptions *s, long timeout_ms);

#endif
