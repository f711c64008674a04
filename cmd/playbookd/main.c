/*
 * main.c: the playbookd command: flags, signals and wiring of config, dispatcher and NATS subscriber,
 * or --check (--explain), --print-rbac and --replay. No logic worth testing lives here. The command line
 * (a contract):
 *   playbookd [-c FILE] [--dry-run] [--check [--explain ALERT.json]] [--print-rbac] [--replay FILE|-]
 *             [--release pod NS/NAME | node NAME] [--log-format text|json] [--version]
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <nats/nats.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "playbookd/config.h"
#include "playbookd/cooldown.h"
#include "playbookd/dispatch.h"
#include "playbookd/expiry.h"
#include "playbookd/http.h"
#include "playbookd/httpd.h"
#include "playbookd/httpin.h"
#include "playbookd/jetstream.h"
#include "playbookd/kube.h"
#include "playbookd/limits.h"
#include "playbookd/log.h"
#include "playbookd/metrics.h"
#include "playbookd/nats.h"
#include "playbookd/rbac.h"
#include "playbookd/rules.h"
#include "playbookd/text.h"
#include "playbookd/workers.h"

#define DEFAULT_CONFIG "/etc/playbookd/playbooks.yaml"

struct flags {
    const char *config;
    const char *replay;
    const char *explain;
    const char *release, *release_name; /* "pod" or "node", and NS/NAME or NAME */
    bool dry_run, check, print_rbac;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: playbookd [-c FILE] [--dry-run] [--check [--explain ALERT.json]] [--print-rbac] "
                 "[--replay FILE|-] [--release pod NS/NAME | node NAME] [--log-format text|json] [--version]\n"
                 "  -c, --config FILE    config file (default " DEFAULT_CONFIG ")\n"
                 "      --dry-run        ask the API server to validate every change without making it\n"
                 "      --check          validate the config and exit 0 (valid) or 1\n"
                 "      --explain FILE   with --check: which topics and rules one alert matches, or why not,\n"
                 "                       and the playbooks that would run\n"
                 "      --print-rbac     print the ClusterRole (YAML) that the config's playbooks need, and exit\n"
                 "      --replay FILE|-  dispatch newline-delimited Falco JSON instead of NATS; one result\n"
                 "                       line per action on stdout; exit 1 if any action failed\n"
                 "      --release pod NS/NAME | node NAME\n"
                 "                       undo playbookd's containment of the object at once (its taints,\n"
                 "                       labels, cordon) and exit 0 (released, or nothing to) or 1\n"
                 "      --log-format F   text (default) or json, one object per line\n"
                 "      --version        print the version\n");
}

/* Returns -1 to continue, or the exit status. */
static int parse_flags(int argc, char **argv, struct flags *f)
{
    enum {
        OPT_DRY_RUN = 256,
        OPT_CHECK,
        OPT_EXPLAIN,
        OPT_PRINT_RBAC,
        OPT_REPLAY,
        OPT_RELEASE,
        OPT_LOG_FORMAT,
        OPT_VERSION
    };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {"check", no_argument, NULL, OPT_CHECK},
        {"explain", required_argument, NULL, OPT_EXPLAIN},
        {"print-rbac", no_argument, NULL, OPT_PRINT_RBAC},
        {"replay", required_argument, NULL, OPT_REPLAY},
        {"release", required_argument, NULL, OPT_RELEASE},
        {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    f->config = DEFAULT_CONFIG;
    while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': f->config = optarg; break;
        case OPT_DRY_RUN: f->dry_run = true; break;
        case OPT_CHECK: f->check = true; break;
        case OPT_EXPLAIN: f->explain = optarg; break;
        case OPT_PRINT_RBAC: f->print_rbac = true; break;
        case OPT_REPLAY: f->replay = optarg; break;
        case OPT_RELEASE: f->release = optarg; break;
        case OPT_LOG_FORMAT:
            if (log_set_format(optarg) != 0) {
                fprintf(stderr, "playbookd: --log-format must be text or json\n");
                return 2;
            }
            break;
        case OPT_VERSION: printf("playbookd %s\n", PLAYBOOKD_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (f->explain != NULL && !f->check) {
        fprintf(stderr, "playbookd: --explain goes with --check\n");
        return 2;
    }
    if (f->release != NULL && optind < argc)
        f->release_name = argv[optind++];
    if (f->release != NULL && (f->release_name == NULL || (strcmp(f->release, "pod") && strcmp(f->release, "node")))) {
        fprintf(stderr, "playbookd: --release pod NS/NAME or --release node NAME\n");
        return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "playbookd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    return -1;
}

struct replay {
    unsigned long line;
    unsigned long actions, failed;
};

/* line N: SUBJECT -> PLAYBOOK: OUTCOME via topic "PATTERN" (or via rule "NAME") */
static void print_result(void *arg, const char *subject, const struct playbook *pb, const struct rule *via,
                         enum outcome o, const char *reason)
{
    struct replay *r = arg;
    char shown_subject[ACTION_REASON_MAX * 6], shown_name[ACTION_REASON_MAX], shown_reason[ACTION_REASON_MAX * 6];
    char shown_via[RULE_NAME_MAX * 6];
    r->actions++;
    r->failed += o == OUTCOME_FAILED;
    text_escape_line(shown_subject, sizeof(shown_subject), subject); /* one line, whatever the API server said */
    text_escape_line(shown_name, sizeof(shown_name), pb->name);
    printf("line %lu: %s -> %s: %s", r->line, shown_subject, shown_name, outcome_name(o));
    if (o == OUTCOME_SKIPPED || o == OUTCOME_FAILED)
        printf(" (%s)", text_escape_line(shown_reason, sizeof(shown_reason), reason));
    printf(" via %s \"%s\"\n", via->is_topic ? "topic" : "rule", text_escape(shown_via, sizeof(shown_via), via->name));
    fflush(stdout);
}

/*
 * Reads one line of at most ALERT_MAX_BYTES + 1 bytes into buf; a longer line is consumed whole and
 * reported by its length so that it is rejected as too large. Returns -1 at the end of input.
 */
static long read_line(FILE *in, char *buf, size_t cap)
{
    size_t n = 0, total = 0;
    int c;
    while ((c = getc_unlocked(in)) != EOF && c != '\n') {
        if (n < cap)
            buf[n++] = (char)c;
        total++;
    }
    if (c == EOF && total == 0)
        return -1;
    if (n > 0 && buf[n - 1] == '\r')
        n--, total--;
    return (long)total;
}

/* What outlives a config: the cooldown table and the rate limiters. */
struct brakes {
    struct cooldown *cooldown;
    struct limits *limits;
};

/* The Kubernetes client (when a playbook needs one) and the dispatcher, which takes cfg and the client. */
static int build_dispatcher(struct dispatcher **out, struct config *cfg, const struct brakes *brakes,
                            dispatch_report_fn report, void *arg, struct error *err)
{
    struct kube *kube = NULL;
    struct error why;
    *out = NULL;
    if (cfg->needs_kube && kube_create(&kube, &cfg->kube, &why) != 0) {
        config_destroy(cfg);
        return error_set(err, "kubernetes: %s", why.msg);
    }
    cfg->env->kube = kube;
    if (dispatcher_create(out, cfg, kube, brakes->cooldown, brakes->limits, report, arg) != 0)
        return error_set(err, "out of memory");
    return 0;
}

/* Replay runs each alert in this thread, in input order, so that its result lines come out in order. */
static int run_replay(struct config *cfg, const struct brakes *brakes, const char *path)
{
    FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (in == NULL) {
        fprintf(stderr, "playbookd: %s: %s\n", path, strerror(errno));
        config_destroy(cfg);
        return 1;
    }
    struct replay r = {0};
    struct dispatcher *d = NULL;
    struct error err;
    size_t cap = ALERT_MAX_BYTES + 1;
    char *buf = malloc(cap), origin[40];
    unsigned long rejected = 0, alerts = 0;
    long len;
    int rc = build_dispatcher(&d, cfg, brakes, print_result, &r, &err);
    if (rc != 0 || buf == NULL)
        fprintf(stderr, "playbookd: %s\n", rc != 0 ? err.msg : "out of memory");
    while (rc == 0 && buf != NULL && (len = read_line(in, buf, cap)) >= 0) {
        r.line++;
        if (len == 0)
            continue;
        alerts++;
        snprintf(origin, sizeof(origin), "line %lu", r.line);
        size_t used = (size_t)len < cap ? (size_t)len : cap; /* an overlong line is rejected as too large */
        rejected += dispatch_submit(d, NULL, NULL, buf, used, origin, NULL) == DISPATCH_REJECTED;
    }
    if (rc == 0 && buf != NULL)
        fprintf(stderr, "replay: %lu alerts (%lu rejected), %lu actions, %lu failed\n", alerts, rejected, r.actions,
                r.failed);
    dispatcher_release(d);
    free(buf);
    if (in != stdin)
        fclose(in);
    return rc != 0 || buf == NULL || r.failed > 0 ? 1 : 0;
}

/*
 * --release pod NS/NAME | node NAME: undoes playbookd's marks on the object at once (expiry.h), printing one
 * result line. 0 when released or when there was nothing to release, 1 on failure, 2 for a name that is not
 * one (checked before any request).
 */
static int run_release(struct config *cfg, const struct flags *f)
{
    char ns[64] = "", shown[ACTION_REASON_MAX * 6];
    const char *name = f->release_name, *slash = strchr(name, '/');
    bool pod = strcmp(f->release, "pod") == 0;
    struct kube *kube = NULL;
    struct action_result res = {0};
    struct error err;
    if (pod && slash != NULL && (size_t)(slash - name) < sizeof(ns)) {
        memcpy(ns, name, (size_t)(slash - name));
        name = slash + 1;
    }
    if ((pod && !kube_name_label(ns)) || !kube_name_subdomain(name)) {
        fprintf(stderr, "playbookd: --release %s: '%s' is not %s\n", f->release,
                text_escape_line(shown, sizeof(shown), f->release_name),
                pod ? "NAMESPACE/NAME of a pod" : "a node name");
        config_destroy(cfg);
        return 2;
    }
    int rc = kube_create(&kube, &cfg->kube, &err);
    if (rc != 0)
        fprintf(stderr, "playbookd: kubernetes: %s\n", err.msg);
    enum outcome o = rc == 0 ? expiry_release(kube, "release", pod ? ns : NULL, name, NULL, true, cfg->dry_run, &res)
                             : OUTCOME_FAILED;
    if (rc == 0)
        printf("%s: %s%s%s%s\n", res.target, outcome_name(o), res.reason[0] ? " (" : "",
               text_escape_line(shown, sizeof(shown), res.reason), res.reason[0] ? ")" : "");
    kube_destroy(kube);
    config_destroy(cfg);
    return rc != 0 || o == OUTCOME_FAILED ? 1 : 0;
}

/* Blocks the signals the main thread waits for; threads created later inherit the mask. */
static void block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static bool is_ready(void *link)
{
    return nats_link_connected(link);
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void count_text(char *buf, size_t size, size_t n)
{
    snprintf(buf, size, "%zu", n);
}

/* What lives across reloads: the pool, the cooldowns and rate limits, the connection and the input on it. */
struct daemon {
    const struct flags *flags;
    struct workers *pool;
    const struct brakes *brakes;
    struct nats_link *link;
    struct dispatcher *current;      /* the config in force (a reference) */
    struct nats_subscriptions *subs; /* core NATS */
    struct js_consumer *js;          /* or JetStream */
    struct httpin *alerts;           /* http.alerts, or NULL */
};

/* Hands the input over to the dispatcher next: the old one finishes what it received, however long. */
static int switch_input(struct daemon *dm, struct dispatcher *next, struct error *err)
{
    httpin_set_dispatcher(dm->alerts, next); /* NULL-safe; with JetStream it only publishes */
    if (dm->js != NULL) {
        jetstream_set_dispatcher(dm->js, next);
        return 0;
    }
    struct nats_subscriptions *subs;
    if (nats_subscribe(&subs, dm->link, next, dm->pool, err) != 0)
        return -1;
    nats_drain(dm->subs, -1); /* every alert received under the old config is handed to the workers */
    nats_subscriptions_free(dm->subs);
    dm->subs = subs;
    return 0;
}

static void warn_restart_only(const struct config *was, const struct config *now)
{
    const char *a = was->http.listen ? was->http.listen : "", *b = now->http.listen ? now->http.listen : "";
    if (!config_nats_equal(&now->nats, &was->nats) || (was->nats.js.stream == NULL) != (now->nats.js.stream == NULL))
        log_kv(LOG_WARN, "the nats section changed: it takes effect on restart", NULL);
    if (strcmp(a, b) != 0)
        log_kv(LOG_WARN, "http.listen changed: it takes effect on restart", NULL);
    if (expiry_configured(was) != expiry_configured(now) || was->expiry_interval_ms != now->expiry_interval_ms)
        log_kv(LOG_WARN, "the expiry sweeper (expire_after, expiry.interval) changes on restart", NULL);
    if (!config_http_alerts_equal(&was->http.alerts, &now->http.alerts))
        log_kv(LOG_WARN, "http.alerts changed: it takes effect on restart", NULL);
    if (was->workers != now->workers || was->queue_size != now->queue_size)
        log_kv(LOG_WARN, "workers and queue_size take effect on restart", NULL);
}

/* SIGHUP: the new config replaces the old one only when it loads and starts; else the old one runs on. */
static void reload(struct daemon *dm)
{
    struct config *cfg;
    struct dispatcher *next;
    struct error err;
    char playbooks[16], topics[16];
    log_kv(LOG_INFO, "SIGHUP: reloading the config", "config", dm->flags->config, NULL);
    if (config_load(&cfg, dm->flags->config, dm->flags->dry_run, &err) != 0) {
        log_kv(LOG_ERROR, "reload failed: the config is invalid; the old one keeps running", "error", err.msg, NULL);
        metrics_config_reload(false);
        return;
    }
    warn_restart_only(dispatcher_config(dm->current), cfg);
    if (build_dispatcher(&next, cfg, dm->brakes, NULL, NULL, &err) != 0 || switch_input(dm, next, &err) != 0) {
        log_kv(LOG_ERROR, "reload failed; the old config keeps running", "error", err.msg, NULL);
        dispatcher_release(next);
        metrics_config_reload(false);
        return;
    }
    dispatcher_release(dm->current); /* freed when its last alert is done */
    dm->current = next;
    count_text(playbooks, sizeof(playbooks), cfg->n_playbooks);
    count_text(topics, sizeof(topics), cfg->n_topics);
    log_kv(LOG_INFO, "config reloaded", "playbooks", playbooks, "topics", topics, "dry_run",
           cfg->dry_run ? "true" : "false", NULL);
    metrics_config_reload(true);
}

static int start_http(struct httpd **h, const struct config *cfg, struct nats_link *link, struct error *err)
{
    char port[16];
    if (cfg->http.listen == NULL)
        return 0;
    if (httpd_start(h, cfg->http.listen, is_ready, link, err) != 0)
        return -1;
    snprintf(port, sizeof(port), "%d", httpd_port(*h));
    log_kv(LOG_INFO, "http listening", "listen", cfg->http.listen, "port", port, NULL);
    return 0;
}

static int start_input(struct daemon *dm, struct error *err)
{
    const struct config *cfg = dispatcher_config(dm->current);
    int rc = cfg->nats.js.stream != NULL
                 ? jetstream_start(&dm->js, dm->link, &cfg->nats.js, dm->current, dm->pool, 2 * (size_t)cfg->workers,
                                   err) /* fetched alerts reach a worker soon: their ack_wait is not spent queued */
                 : nats_subscribe(&dm->subs, dm->link, dm->current, dm->pool, err);
    if (rc == 0 && cfg->http.alerts.listen != NULL) /* JetStream: into the stream, taken by the consumer */
        rc = httpin_start(&dm->alerts, &cfg->http.alerts, dm->current, dm->pool, dm->js, err);
    return rc;
}

/*
 * SIGTERM: stop receiving, let the workers finish what was received within shutdown_timeout_ms, then drop
 * it (core NATS: counted as lost; JetStream: not acked, so it comes back).
 */
static void stop(struct daemon *dm)
{
    long timeout = dm->current ? dispatcher_config(dm->current)->shutdown_timeout_ms : 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    httpin_stop(dm->alerts); /* first: it submits to the pool and publishes through dm->js */
    dm->alerts = NULL;
    jetstream_stop(dm->js);
    nats_drain(dm->subs, timeout);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long spent = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    size_t dropped = workers_finish(dm->pool, spent < timeout ? timeout - spent : 0);
    if (dropped > 0) {
        char n[24];
        count_text(n, sizeof(n), dropped);
        log_kv(LOG_WARN,
               dm->js ? "alerts left for redelivery at the stop deadline" : "alerts dropped at the stop deadline",
               "count", n, NULL);
    }
    if (dm->current != NULL)
        dispatcher_stop(dm->current); /* the actions under way are not retried again */
    nats_subscriptions_free(dm->subs);
    workers_destroy(dm->pool);
    jetstream_destroy(dm->js);
}

/*
 * What a burst allocated (received alerts, the queue, the bodies of requests) is freed into malloc's
 * arenas, which keep most of it: free pages amid live chunks go back to the kernel only on malloc_trim.
 * Called every second: trims once, when the workers have been quiet for a second after some work. A flood
 * of 20,000 alerts left 55 MiB resident without it, 33 MiB with it.
 */
static void trim_after_burst(struct workers *pool, unsigned long *ended, bool *trimmed)
{
    if (!workers_quiet(pool, ended))
        *trimmed = false;
    else if (!*trimmed) {
        malloc_trim(0);
        *trimmed = true;
    }
}

/* Without credentials the server cannot tell playbookd's publishers from anyone else on the network. */
static void warn_if_anonymous(const struct config *cfg)
{
    if (cfg->dry_run || config_nats_auth_methods(&cfg->nats) > 0 || cfg->nats.tls_cert != NULL)
        return;
    log_kv(LOG_WARN, "nats: connecting without credentials: anyone who can reach NATS can trigger the playbooks",
           "hint",
           "give the server authorization (manifests/nats.yaml) and playbookd an identity: nats.nkey, "
           "user/password, credentials or token",
           NULL);
}

static int run_daemon(struct config *cfg, const struct brakes *brakes, const struct flags *f)
{
    sigset_t set;
    struct daemon dm = {.flags = f, .brakes = brakes};
    struct httpd *http = NULL;
    struct expiry_sweeper *sweeper = NULL;
    struct error err;
    int sig = 0;
    block_signals(&set);
    long workers = cfg->workers, queue = cfg->queue_size;
    int rc = build_dispatcher(&dm.current, cfg, brakes, NULL, NULL, &err);
    if (rc == 0 && expiry_configured(dispatcher_config(dm.current)))
        rc = expiry_sweeper_start(&sweeper, dispatcher_config(dm.current), &err);
    if (rc == 0)
        rc = workers_create(&dm.pool, (size_t)workers, (size_t)queue, &err);
    if (rc == 0)
        warn_if_anonymous(cfg);
    if (rc == 0)
        rc = nats_link_create(&dm.link, &dispatcher_config(dm.current)->nats, "playbookd", &err);
    if (rc == 0)
        rc = start_input(&dm, &err);
    if (rc == 0 && nats_link_connected(dm.link))
        log_kv(LOG_INFO, "ready", NULL);
    if (rc == 0)
        rc = start_http(&http, dispatcher_config(dm.current), dm.link, &err);
    if (rc != 0)
        log_kv(LOG_ERROR, "cannot start", "error", err.msg, NULL);
    struct timespec tick = {.tv_sec = 1};
    unsigned long ended = 0;
    bool trimmed = true;
    while (rc == 0 &&
           ((sig = sigtimedwait(&set, NULL, &tick)) == SIGHUP || (sig < 0 && (errno == EAGAIN || errno == EINTR)))) {
        if (sig == SIGHUP)
            reload(&dm);
        nats_poll_dropped(dm.subs);
        limits_flush(brakes->limits, monotonic_ms());
        trim_after_burst(dm.pool, &ended, &trimmed);
        if (nats_link_closed(dm.link)) { /* nothing more will arrive: exit, and be restarted */
            log_kv(LOG_ERROR, "stopping: the NATS connection is closed for good", "hint",
                   "playbookd exits with status 1 so that it is restarted; see 'nats connection closed' above", NULL);
            rc = 1;
        }
    }
    if (rc == 0)
        log_kv(LOG_INFO, "stopping: draining the input", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM", NULL);
    long flush_ms = dm.js != NULL ? 5000 : 0; /* JetStream's last acks; core NATS sends nothing */
    expiry_sweeper_stop(sweeper);
    stop(&dm);
    httpd_stop(http);
    nats_link_destroy(dm.link, flush_ms);
    dispatcher_release(dm.current);
    return rc == 0 ? 0 : 1;
}

static void log_summary(void)
{
    struct metrics_snapshot m;
    char received[24], rejected[24], ok[24], failed[24];
    metrics_snapshot(&m);
    snprintf(received, sizeof(received), "%lu", m.alerts_received);
    snprintf(rejected, sizeof(rejected), "%lu", m.alerts_rejected);
    snprintf(ok, sizeof(ok), "%lu", m.actions[OUTCOME_OK] + m.actions[OUTCOME_DRY_RUN]);
    snprintf(failed, sizeof(failed), "%lu", m.actions[OUTCOME_FAILED]);
    log_kv(LOG_INFO, "stopped", "alerts", received, "rejected", rejected, "actions_ok", ok, "actions_failed", failed,
           NULL);
}

/* --check: "FILE: ok (2 playbooks, 3 topics, 1 rule)". */
static void print_check(const struct flags *f, const struct config *cfg)
{
    size_t rules = cfg->n_rules - cfg->n_topics;
    printf("%s: ok (%zu playbook%s, %zu topic%s", f->config, cfg->n_playbooks, cfg->n_playbooks == 1 ? "" : "s",
           cfg->n_topics, cfg->n_topics == 1 ? "" : "s");
    if (rules > 0)
        printf(", %zu rule%s", rules, rules == 1 ? "" : "s");
    printf("%s)\n", cfg->dry_run ? ", dry run" : "");
}

/* --check --explain FILE: exit 0 once explained (matched or not), 1 when the alert cannot be read. */
static int explain(const struct config *cfg, const char *path)
{
    struct error err;
    size_t len = 0;
    char *text = text_read_file(path, ALERT_MAX_BYTES, &len, &err);
    int rc = text == NULL || dispatch_explain(cfg, text, len, stdout, &err) != 0;
    if (rc != 0)
        fprintf(stderr, "playbookd: %s: %s\n", path, err.msg);
    free(text);
    return rc || fflush(stdout) != 0;
}

/*
 * glibc gives threads up to 8 arenas per core (128 on a 16-core node): with about 70 threads (workers,
 * Event senders, cnats, libmicrohttpd) nearly every busy thread would keep an arena of its own, each with
 * its free space and fragmentation. Four bound that whatever the node. Measured (MALLOC_ARENA_MAX, 2
 * cores, 1,000 alerts/s, medians of 3): peak RSS 21.2 MiB with 4 arenas, 22.5 with 16 (the default on 2
 * cores), 25.0 with 72 (a thread each, as on a large node); a 0 ms flood ran as fast with 4 as with 16,
 * while 2 lost a quarter of its throughput to lock contention.
 */
#define MALLOC_ARENAS 4

int main(int argc, char **argv)
{
    mallopt(M_ARENA_MAX, MALLOC_ARENAS);
    struct flags f = {0};
    struct config *cfg = NULL;
    struct error err;
    int rc = parse_flags(argc, argv, &f);
    if (rc >= 0)
        return rc;
    if (config_load(&cfg, f.config, f.dry_run, &err) != 0) {
        fprintf(stderr, "playbookd: %s\n", err.msg);
        return 1;
    }
    if (f.print_rbac) {
        rc = rbac_print(stdout, cfg, &err) == 0 && fflush(stdout) == 0 ? 0 : 1;
        if (rc != 0)
            fprintf(stderr, "playbookd: %s\n", err.msg);
        config_destroy(cfg);
        return rc;
    }
    if (f.check) {
        rc = f.explain ? explain(cfg, f.explain) : 0;
        if (!f.explain)
            print_check(&f, cfg);
        config_destroy(cfg);
        return rc;
    }
    if (http_global_init() != 0) {
        fprintf(stderr, "playbookd: cannot initialise libcurl\n");
        config_destroy(cfg);
        return 1;
    }
    if (f.release) {
        rc = run_release(cfg, &f);
        http_global_cleanup();
        return rc;
    }
    log_kv(LOG_INFO, "starting", "version", PLAYBOOKD_VERSION, "config", f.config, "dry_run",
           cfg->dry_run ? "true" : "false", NULL);
    struct brakes brakes = {0};
    if (cooldown_create(&brakes.cooldown, 0) != 0 || limits_create(&brakes.limits) != 0) {
        fprintf(stderr, "playbookd: out of memory\n");
        config_destroy(cfg);
        cooldown_destroy(brakes.cooldown);
        http_global_cleanup();
        return 1;
    }
    rc = f.replay ? run_replay(cfg, &brakes, f.replay) : run_daemon(cfg, &brakes, &f);
    if (!f.replay) {
        nats_CloseAndWait(5000);
        log_summary();
    }
    limits_destroy(brakes.limits);
    cooldown_destroy(brakes.cooldown);
    http_global_cleanup();
    return rc;
}
