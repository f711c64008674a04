/*
 * lease.h: a cluster-wide lock, held by one playbookd worker of any replica at a time, as a
 * coordination.k8s.io/v1 Lease (the object client-go's leader election uses). lease_acquire creates the Lease
 * (201: held); when it exists (409 AlreadyExists) it reads it and takes over an expired one (renewTime plus
 * leaseDurationSeconds past, or no renewTime) with a PUT guarded by its resourceVersion, or waits in short
 * sleeps while another holder's is live, up to a bounded wait: then the action fails as transient, so the
 * dispatcher's retry policy applies. lease_release deletes it at once after acting, with the held uid and
 * resourceVersion as preconditions; the duration (the caller's) only matters after a crash. Every request carries
 * dryRun=All in dry run (nothing persists: no real lock then, and nothing is changed either).
 */
#ifndef PLAYBOOKD_LEASE_H
#define PLAYBOOKD_LEASE_H

#include <stdbool.h>

#include "playbookd/playbook.h"

#define LEASE_WAIT_MS_MAX 60000   /* the longest wait a caller may ask for */
#define LEASE_SLEEP_MIN_MS 50     /* between two tries while another holder's Lease is live: */
#define LEASE_SLEEP_SPREAD_MS 150 /* 50 to 200 ms, spread so that waiting replicas do not try in step */
#define LEASE_NAME_MAX 253        /* a Lease name is a DNS-1123 subdomain */
#define LEASE_HOLDER_MAX 160      /* holderIdentity: hostname (the pod name), process nonce, sequence */

struct kube;

/* One acquisition, the caller's (on its stack): what lease_release needs to delete exactly what it holds. */
struct lease {
    bool held;
    bool dry_run;
    char ns[64];
    char name[LEASE_NAME_MAX + 1];
    char uid[128];              /* of the Lease as held, for the DELETE's preconditions */
    char resource_version[128]; /* empty in dry run: nothing was stored */
    char holder[LEASE_HOLDER_MAX];
    long duration_s;   /* leaseDurationSeconds written */
    double acquired_s; /* CLOCK_MONOTONIC when the request that took it was sent */
};

/*
 * Takes the Lease ns/name (names already checked) for `what` ("deployment shop/cart", named in the failure
 * when another holder keeps it past wait_ms). OUTCOME_OK with l->held, or OUTCOME_FAILED with the reason
 * (transient for a live holder, no answer, 429, 5xx).
 */
enum outcome lease_acquire(struct kube *k, const char *ns, const char *name, const char *what, long wait_ms,
                           long duration_s, bool dry_run, struct lease *l, struct action_result *res);

/* The milliseconds before the Lease l holds may expire for the others (its duration from when the request
 * that took it was sent, by this host's monotonic clock); 0 when it holds none. It is never renewed: a
 * holder acts only while enough is left (owner.c). */
long lease_left_ms(const struct lease *l);

/* Deletes the Lease if l holds it (404 and 409, someone took over an expired one: fine, logged at debug);
 * l then holds nothing. */
void lease_release(struct kube *k, struct lease *l);

#endif
