/*
 * kube.h: a small Kubernetes REST client. It finds the API server and credentials in cluster (service
 * account) or in a kubeconfig, always verifies TLS, re-reads a rotating token, and answers with HTTP facts
 * (status, Retry-After, a Status object's reason); playbook.h turns those into outcomes. It records
 * events.k8s.io Events asynchronously. The name checks that target.c applies
 * to alert fields before any path is built live here too. The module is kube.c (requests), kube_config.c
 * (where the API server is) and kube_event.c (the Event queue and its senders).
 */
#ifndef PLAYBOOKD_KUBE_H
#define PLAYBOOKD_KUBE_H

#include <stdbool.h>

#include "playbookd/config.h"
#include "playbookd/error.h"
#include "playbookd/http.h"

#define KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define KUBE_TOKEN_MAX_AGE_S 60
#define KUBE_TOKEN_MAX 16384
#define KUBE_URL_MAX 2048

/*
 * Events never make an action wait. kube_record_event queues the built Event (at most KUBE_EVENT_QUEUE_MAX
 * waiting; beyond that it is dropped and counted) and KUBE_EVENT_SENDERS sender threads each keep up to
 * KUBE_EVENT_IN_FLIGHT of them in flight (HTTP/2 streams on one connection when the API server speaks it,
 * as it does; several threads so that a saturated CPU still gives Events their share), each request within
 * the client's timeout_ms but at most KUBE_EVENT_TIMEOUT_MS. kube_destroy lets the senders work through
 * the queue for up to KUBE_EVENT_DRAIN_MS (an Event already in flight may finish within its own timeout)
 * and counts what is left as dropped.
 */
#define KUBE_EVENT_QUEUE_MAX 1024
#define KUBE_EVENT_SENDERS 4
#define KUBE_EVENT_IN_FLIGHT 16 /* per sender */
#define KUBE_EVENT_TIMEOUT_MS 5000
#define KUBE_EVENT_DRAIN_MS 2000

struct kube;
struct cJSON;

/* Where the API server is and how to authenticate (kube_config.c). */
struct kube_endpoint {
    char *server; /* https://host:port */
    char *ca_file, *cert_file, *key_file;
    char *ca_data, *cert_data, *key_data; /* PEM, decoded from a kubeconfig's *-data */
    size_t ca_len, cert_len, key_len;
    char *token;      /* a fixed token */
    char *token_file; /* or a token file, re-read as it rotates */
};

int kube_endpoint_load(struct kube_endpoint *ep, const struct config_kube *cfg, struct error *err);

/*
 * A bearer token as read (text[0..*len), NUL-terminated, modified in place): trailing blanks and one line
 * end are removed; then an empty token, or one holding a control character (CR, LF, NUL...) or a space, is an
 * error naming `where`, never the token: sent, it would inject headers or go without Authorization.
 */
int kube_token_check(const char *where, char *text, size_t *len, struct error *err);
void kube_endpoint_free(struct kube_endpoint *ep);

/*
 * From cfg: a kubeconfig (cfg->kubeconfig, else $KUBECONFIG) with cfg->context or its current context;
 * without one, in cluster from KUBERNETES_SERVICE_HOST/PORT and the service account in cfg->sa_dir.
 */
int kube_create(struct kube **out, const struct config_kube *cfg, struct error *err);
/* Drains the Event queue (see KUBE_EVENT_DRAIN_MS), stops its senders and frees k. Any thread but a sender. */
void kube_destroy(struct kube *k);
const char *kube_server(const struct kube *k);

struct kube_response {
    long status; /* 0: no answer (the reason is in message) */
    char *body;  /* the body as received, or NULL; kube_response_json parses it when a caller needs it */
    size_t body_len;
    struct cJSON *json; /* parsed by kube_response_json, else NULL */
    long retry_after_s;
    char message[200]; /* a Status object's "reason: message", or the transport error */
};

/* The body parsed as JSON, once, on first use (a DELETE's Pod is rarely read); NULL if it is not JSON. */
const struct cJSON *kube_response_json(struct kube_response *resp);
void kube_response_free(struct kube_response *resp);

/*
 * Sends method path (names already checked) with body (JSON of content_type, or NULL; taken and freed),
 * adding dryRun=All when dry_run; once more at once with a fresh token after a 401. 0 if an answer came.
 */
int kube_send(struct kube *k, const char *method, const char *path, const char *content_type, char *body, bool dry_run,
              struct kube_response *resp);
/* The client's timeout_ms: the longest one request may take. */
long kube_timeout_ms(const struct kube *k);

/* kube_send with its own whole-request timeout (0: the client's timeout_ms). */
int kube_send_within(struct kube *k, const char *method, const char *path, const char *content_type, char *body,
                     bool dry_run, long timeout_ms, struct kube_response *resp);

/* A request as kube_send makes it (URL with dryRun=All, the current token, TLS), for a caller that sends it
 * itself (the Event sender's batch); fresh_token re-reads a token file first. 0, or -1 with the reason in
 * err: the URL is too long, or there is no usable token (the token file is empty or malformed). */
struct kube_prepared {
    struct http_request http;
    char url[KUBE_URL_MAX];
    char token[KUBE_TOKEN_MAX + 1];
};
int kube_prepare(struct kube *k, const char *method, const char *path, const char *content_type, const char *body,
                 bool dry_run, long timeout_ms, bool fresh_token, struct kube_prepared *out, struct error *err);
/* The answer in http as a kube_response (status, Retry-After, a Status object's reason); takes the body. */
void kube_response_take(struct kube_response *resp, struct http_response *http);

/* The DeleteOptions of a pod's DELETE or Eviction (without apiVersion and kind): dryRun ["All"] in dry run (the
 * API server reads the body's options, not the query, when a body is sent), gracePeriodSeconds when >= 0,
 * preconditions.uid when uid is not NULL. NULL when out of memory. */
struct cJSON *kube_delete_options(bool dry_run, long grace_period_seconds, const char *uid);

/* Now as a MicroTime (events.k8s.io/v1 eventTime, a Lease's renewTime): RFC 3339 in UTC with exactly six
 * fractional digits, "2026-11-23T03:00:00.123456Z"; size at least 32. */
void kube_micro_time(char *buf, size_t size);

/* base "/" key as a JSON pointer into out: in the key, '~' is "~0" and '/' is "~1" (RFC 6901). */
void kube_json_pointer(char *out, size_t size, const char *base, const char *key);

/* True if a 422 answer (its Status) is a JSON patch's failed test operation, that is the object changed
 * since it was read (retry from a fresh read), not a validation failure. */
bool kube_patch_test_failed(const struct cJSON *status);

/*
 * Adds "metadata" to a merge patch object with the preconditions the API server checks, each when not NULL:
 * uid (a uid cannot change, so another object of the same name is refused: 422, see kube_patch_uid_refused)
 * and resourceVersion (409 Conflict when the object changed since it was read). Returns that metadata
 * object, for the caller's labels or annotations; NULL when out of memory.
 */
struct cJSON *kube_patch_metadata(struct cJSON *patch, const char *uid, const char *resource_version);

/* True if a PATCH answer (422 Invalid) refused the patch's metadata.uid: the object is not the one meant. */
bool kube_patch_uid_refused(struct kube_response *resp);

/*
 * An events.k8s.io/v1 Event on the object acted on. Best effort and asynchronous: kube_record_event builds
 * the Event from ev at once (ev and its strings may be freed when it returns), queues it without blocking
 * and returns. Every Event is counted by metrics_event: "ok" (created), "failed" (logged as "event not
 * recorded", at most once a second with the number not logged since), or "dropped" (the queue was full or
 * the client stopping; logged at most once a second).
 */
struct kube_event {
    const char *kind; /* "Pod" or "Node" */
    const char *namespace_, *name, *uid;
    const char *action; /* "DeletePod" */
    const char *reason; /* NULL: "FalcoAlert" */
    const char *note;
    bool dry_run;
};
void kube_record_event(struct kube *k, const struct kube_event *ev);

/* Inside the module (kube.c uses kube_event.c): the queue and senders of one client's Events. */
struct kube_events;
int kube_events_start(struct kube_events **out, struct kube *k, long timeout_ms, struct error *err);
void kube_events_record(struct kube_events *q, const struct kube_event *ev);
void kube_events_stop(struct kube_events *q); /* drains, joins, frees; NULL is a no-op */

/* in as a URL query value (a continue token, a labelSelector) into out: unreserved characters as they are,
 * the rest percent-encoded. 0, or -1 when it does not fit in size bytes. */
int kube_query_escape(char *out, size_t size, const char *in);

/* DNS-1123 label (namespaces): [a-z0-9-], at most 63, alphanumeric at both ends. */
bool kube_name_label(const char *s);
/* DNS-1123 subdomain (pods, nodes): labels joined by '.', at most 253. */
bool kube_name_subdomain(const char *s);

/* A label or taint key: [prefix/]name, prefix a DNS-1123 subdomain, name 1-63 of [A-Za-z0-9-_.]. */
bool kube_qualified_name(const char *s);
/* A label or taint value: empty, or 1-63 of [A-Za-z0-9-_.], alphanumeric at both ends. */
bool kube_label_value(const char *s);

#endif
