/*
 * jetstream.h: at-least-once input. A durable pull consumer (explicit ack) on the alerts' stream, shared
 * by every replica, fetches only as many alerts as the workers can take. An alert is acknowledged
 * when every playbook reached a final outcome: all ok/dry-run/skipped: Ack; a transient failure left
 * after the in-process retries: Nak with the next backoff delay; a permanent failure or an invalid
 * alert: Term. On the last delivery (max_deliver) a failure is logged as dropped and counted. Long
 * retries send InProgress so that ack_wait does not expire under them.
 */
#ifndef PLAYBOOKD_JETSTREAM_H
#define PLAYBOOKD_JETSTREAM_H

#include "playbookd/config.h"
#include "playbookd/dispatch.h"
#include "playbookd/error.h"
#include "playbookd/nats.h"

struct js_consumer;
struct workers;

/*
 * Creates the stream when create_stream says so, binds (or creates) the durable consumer and starts the
 * fetching thread: each alert is handed to pool by d (a reference is taken), with at most `window`
 * alerts fetched and not yet settled. Works on after reconnects; started before NATS answers, the
 * thread binds once it can.
 */
int jetstream_start(struct js_consumer **out, struct nats_link *l, const struct config_jetstream *cfg,
                    struct dispatcher *d, struct workers *pool, size_t window, struct error *err);
/*
 * Publishes one alert (for the HTTP input) on subject into the stream and waits for the stream's ack (2 s
 * at most), so that it is as safe as any alert published by falco-nats; the consumer then fetches it as
 * usual. Returns 0 once stored, else -1 with the reason in err (NATS down, no ack, no stream for subject).
 */
int jetstream_publish(struct js_consumer *c, const char *subject, const char *data, size_t len, struct error *err);
/* The dispatcher for alerts fetched from now on (a reload): takes a reference, drops the old one. */
void jetstream_set_dispatcher(struct js_consumer *c, struct dispatcher *d);
/* Stops fetching and joins the thread; alerts already fetched are acked by their workers. NULL: no-op. */
void jetstream_stop(struct js_consumer *c);
/* Frees, once no fetched alert is left in the pool (after workers_destroy). NULL: no-op. */
void jetstream_destroy(struct js_consumer *c);

#endif
