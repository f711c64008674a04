/*
 * expiry.h: containment that expires. A playbook with `expire_after:` writes, in the same request as its
 * change, what it changed onto the object itself, so that state lives in the cluster (restarts and
 * replicas need nothing else):
 *
 *   label       playbookd.io/contained: "true"          lets the sweeper list marked objects server-side
 *   annotation  playbookd.io/expires-at: RFC 3339 UTC    "2026-11-23T03:00:30Z"; the later expiry wins
 *   annotation  playbookd.io/taints: "KEY:EFFECT,..."    the taints playbookd added (key and effect)
 *   annotation  playbookd.io/labels: "KEY=VALUE,..."     the labels playbookd set, with the value it set
 *   annotation  playbookd.io/cordon: "expires"           playbookd's cordon expires (cordon-node also sets its
 *                                                        playbookd.io/cordoned-by: playbookd on every cordon)
 *
 * Neither a taint or label key nor a label value or taint effect can hold ',', '=' (values) or ':' (keys
 * have none after the prefix's '/'), so the lists need no escaping; entries that do not parse are ignored.
 * The sweeper (a thread in daemon mode, every `expiry.interval`) lists nodes and pods (all namespaces) with
 * the label and undoes the expired ones; `playbookd --release` undoes one at once. An undo is one JSON patch
 * guarded by the object's resourceVersion: it removes the recorded taints (matched by key and effect), the
 * recorded labels whose value is still the one playbookd set, the cordon only when playbookd made it (and,
 * in a sweep, meant it to expire), and every annotation above and the label. A taint, label or cordon
 * someone else made stays. --release undoes every recorded mark, and a cordon of playbookd's even when it
 * was not meant to expire.
 */
#ifndef PLAYBOOKD_EXPIRY_H
#define PLAYBOOKD_EXPIRY_H

#include <stdbool.h>
#include <time.h>

#include "playbookd/config.h"
#include "playbookd/error.h"
#include "playbookd/playbook.h"

#define EXPIRY_LABEL "playbookd.io/contained"
#define EXPIRY_LABEL_SELECTOR "playbookd.io%2Fcontained" /* as a query value */
#define EXPIRY_AT "playbookd.io/expires-at"
#define EXPIRY_TAINTS "playbookd.io/taints"
#define EXPIRY_LABELS "playbookd.io/labels"
#define EXPIRY_CORDON_AT "playbookd.io/cordon" /* "expires": playbookd's cordon expires with the rest */

#define EXPIRY_LIST_MAX 2048 /* bytes of one list annotation: past it a new mark fails the action */
#define EXPIRY_TIME_MAX 32
#define EXPIRY_AFTER_MAX_MS (365L * 24 * 3600 * 1000)
#define EXPIRY_INTERVAL_MIN_MS 1000L
#define EXPIRY_INTERVAL_MAX_MS 3600000L
/* Objects per list page: a page of nodes (long image lists) stays well under the response cap. */
#define EXPIRY_PAGE 50
#define EXPIRY_PAGES_MAX 200 /* pages per kind per sweep; the rest waits for the next sweep (logged) */
#define EXPIRY_TRIES 3       /* an undo that meets a concurrent change reads the object again, this often */

/* What a change marks; a playbook passes one or more with its change. */
enum expiry_kind { EXPIRY_TAINT, EXPIRY_LABEL_SET, EXPIRY_CORDON };
struct expiry_mark {
    enum expiry_kind kind;
    const char *key;   /* taint key, label key; NULL for a cordon */
    const char *value; /* taint effect, label value */
};

/* The annotation values and label to write with the change. */
struct expiry_write {
    char expires_at[EXPIRY_TIME_MAX];
    char taints[EXPIRY_LIST_MAX];
    char labels[EXPIRY_LIST_MAX];
    bool cordon;    /* playbookd's cordon expires */
    bool cancel;    /* a change made for good: its marks taken out (lists written as they are, empty removed) */
    bool none_left; /* a cancel that leaves no mark: every annotation above and the label removed */
};

/* "2026-11-23T03:00:30Z" from t. */
void expiry_time_format(time_t t, char out[EXPIRY_TIME_MAX]);
/* RFC 3339 in UTC ("Z", fraction ignored) into *t; -1 if it is not one. */
int expiry_time_parse(const char *text, time_t *t);

/*
 * Plans the marks of a change that expires after expire_after_ms, for object as read: the marks already
 * there are kept, and the later of its expiry and now + expire_after wins. A mark counts as playbookd's own
 * when its change is not in effect yet (playbookd makes it now) or is recorded already (playbookd made it);
 * a change in effect by someone else's hand (a taint, a label with that value, a cordon without
 * cordoned-by) is not recorded: it is not playbookd's to undo. Returns how many marks are its own (0: write
 * no marks), or -1 with the reason in res (failed) when a list would pass EXPIRY_LIST_MAX.
 * With expire_after_ms 0 the change is made for good, and "no expiry" is the latest of all: the same
 * changes recorded by an earlier expiring one (a taint by key and effect, a label by key, the cordon) come
 * out of the lists, the rest keeps its expiry; returns how many came out (0: write no marks).
 */
int expiry_plan(struct expiry_write *w, const struct cJSON *object, long expire_after_ms, time_t now,
                const struct expiry_mark *marks, size_t n, struct action_result *res);
/* expiry_plan for playbook pb (its expire_after; 0 when it has none) and the time now. */
int expiry_for(const struct playbook *pb, const struct cJSON *object, const struct expiry_mark *marks, size_t n,
               struct expiry_write *w, struct action_result *res);
/* Appends " (STATE)" to res->target, with ": expiry extended" or ": no longer expires" when own > 0 marks
 * were written (expiry_for's count) for pb's change that was in effect already. */
void expiry_note(struct action_result *res, const char *state, const struct playbook *pb, int own);
/* Adds the ops that write w to a JSON patch (ops, an array) for object as read. */
void expiry_json_patch(struct cJSON *ops, const struct cJSON *object, const struct expiry_write *w);
/* Adds w to the metadata object of a merge patch. */
void expiry_merge_patch(struct cJSON *meta, const struct expiry_write *w);

/* What the undo of one object comes to. */
enum expiry_undo { EXPIRY_NOTHING, EXPIRY_NOT_YET, EXPIRY_INVALID, EXPIRY_PATCH };

/*
 * The guarded JSON patch that undoes playbookd's marks on object (as read) into *body: when it expired at
 * now, or at once with force. what gets "taint falco/alert:NoSchedule, label a=b, cordon" (what is undone).
 * EXPIRY_NOTHING: no marks; EXPIRY_NOT_YET: not expired; EXPIRY_INVALID: no readable expiry (left alone).
 */
enum expiry_undo expiry_undo_patch(const struct cJSON *object, time_t now, bool force, char **body, char *what,
                                   size_t size);

struct kube;

/*
 * Undoes the marks on one object (ns NULL: the node name) with expiry_undo_patch: listed is the object as a
 * list returned it, or NULL to GET it. Logs an action line (playbook `playbook`, type "release"), records an
 * Event (ReleasePod, ReleaseNode) when something was undone, and returns the outcome: ok (or dry-run),
 * skipped when there is nothing (yet) to undo, failed. Names are the caller's to check.
 */
enum outcome expiry_release(struct kube *k, const char *playbook, const char *ns, const char *name,
                            const struct cJSON *listed, bool force, bool dry_run, struct action_result *res);

/* True when a playbook of cfg has expire_after: the sweeper runs and needs expiry_rbac. */
bool expiry_configured(const struct config *cfg);
/* What the sweeper and --release need of the API: pods and nodes get, list, patch. */
extern const struct rbac_rule expiry_rbac[];

/* The sweeper: a thread with its own Kubernetes client, sweeping at once and then every interval. */
struct expiry_sweeper;
int expiry_sweeper_start(struct expiry_sweeper **out, const struct config *cfg, struct error *err);
void expiry_sweeper_stop(struct expiry_sweeper *s); /* NULL is a no-op */

#endif
