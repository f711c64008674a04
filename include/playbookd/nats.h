/*
 * nats.h: the NATS subscriber. One subscription per topic pattern (in a queue group when configured);
 * a message that matches several patterns reaches every one of those subscriptions, and only the one of
 * its first matching pattern dispatches it, so each alert is handled once. Reconnects forever.
 */
#ifndef PLAYBOOKD_NATS_H
#define PLAYBOOKD_NATS_H

#include "playbookd/config.h"
#include "playbookd/dispatch.h"
#include "playbookd/error.h"

struct subscriber;

/* Connects (or keeps trying in the background) and subscribes to every topic pattern. */
int subscriber_create(struct subscriber **out, const struct config *cfg, struct dispatcher *d,
                      struct error *err);
/* Stops delivery, waits for handlers in flight, and closes the connection. NULL is a no-op. */
void subscriber_destroy(struct subscriber *s);

#endif
