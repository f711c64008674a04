/*
 * main.c: falco-nats, the forwarder of the original design. Reads Falco's JSON alerts, one per line,
 * from a named pipe or stdin, and publishes each on falco.<priority>.<slug> (or --subject-template) over one persistent
 * NATS connection. A line that is not a Falco alert is logged and skipped.
 *
 * Two ways to publish, and neither claims more than happened. Core NATS (the default) is at most once:
 * a line counts as published once the server has answered a flush sent after it; lines cnats still holds
 * at exit (NATS down) are logged as not delivered. --jetstream is at least once: each line is published
 * with a Nats-Msg-Id derived from its bytes and retried until the stream acknowledges it, so a republish
 * whose first ack was lost in a reconnect is stored once. Meanwhile lines wait in the pipe, which is then
 * the bounded buffer (Falco blocks or drops on its side).
 *
 * SIGTERM and SIGINT stop the reading at once; what was read has STOP_GRACE_MS to be delivered, what is
 * not is counted in the log ("lines not delivered"), and the exit status is 0.
 *
 * Writers of the pipe may come and go (Falco restarts). A pipe left with no reader and no writer loses
 * what is in it, so rather than reopening after each writer's end of file (losing lines written in
 * between), falco-nats holds a write end of the pipe itself: reads then never see an end of file.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "playbookd/alert.h"
#include "playbookd/log.h"
#include "playbookd/nats.h"
#include "playbookd/subject.h"
#include "playbookd/text.h"

#define DEFAULT_SERVER "nats://nats:4222"
#define DEFAULT_PIPE "/var/run/falco/nats"
#define CHUNK 65536
#define STOP_GRACE_MS 5000 /* after a stop signal (or at the end of input) for what was read to be delivered */
#define ACK_WAIT_MS 2000   /* for one JetStream PubAck */
#define FLUSH_WAIT_MS 2000 /* for the answer to one flush (core NATS) */
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 1000
#define POLL_MS 250 /* the longest a stop signal can go unseen while the input is idle */

static volatile sig_atomic_t stopping;

struct options {
    char *server;
    const char *pipe;
    const char *subject_template;
    bool jetstream;
};

struct forwarder {
    natsConnection *conn;
    jsCtx *js; /* --jetstream; NULL: core NATS */
    const char *subject_template;
    char *line; /* ALERT_MAX_BYTES + 1 */
    size_t len;
    bool overflow;             /* the current line is longer than an alert may be */
    bool failing;              /* publishing fails: logged once, until it works again */
    long long grace_end_ms;    /* 0 until a stop signal or the end of input */
    unsigned long published;   /* known delivered: acknowledged by the stream, or confirmed by a flush */
    unsigned long unconfirmed; /* core NATS: handed to cnats since the last confirmed flush */
    unsigned long undelivered; /* refused, or given up at the end of the grace period */
    unsigned long skipped;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: falco-nats [-s NATS_URL] [-f PIPE|-] [--jetstream] [--token T] [--user U --password P]\n"
            "                  [--creds FILE] [--nkey SEED_FILE] [--tls-ca FILE] [--tls-cert FILE --tls-key FILE]\n"
            "                  [--subject-template T] [--log-format text|json]\n"
            "  -s URL       NATS server (default " DEFAULT_SERVER ")\n"
            "  -f PIPE      named pipe Falco writes JSON alerts to (default " DEFAULT_PIPE "), or - for stdin\n"
            "  --jetstream  at least once: publish to a JetStream stream (created beforehand, subjects falco.>)\n"
            "               with a Nats-Msg-Id per line, retried until acknowledged; the stream de-duplicates\n"
            "  --subject-template T  the subject of each alert (default " SUBJECT_TEMPLATE_DEFAULT "): text and the\n"
            "               tokens <priority> and <rule> (the rule's slug), as falcosidekick's subjecttemplate\n"
            "  --nkey FILE  authenticate with a user NKey: FILE holds its seed (SU...), as `nk -gen user` writes it\n"
            "  NATS_TOKEN, NATS_USER and NATS_PASSWORD in the environment are used when the flags are absent.\n"
            "  One way to authenticate at most: token, user/password, creds or nkey.\n"
            "  At exit, lines that were read but not delivered are logged as \"lines not delivered\".\n");
}

/* Returns -1 to continue, or the exit status. */
static int parse_flags(int argc, char **argv, struct config_nats *n, struct options *o)
{
    enum {
        OPT_TOKEN = 256,
        OPT_USER,
        OPT_PASSWORD,
        OPT_CREDS,
        OPT_NKEY,
        OPT_CA,
        OPT_CERT,
        OPT_KEY,
        OPT_LOG,
        OPT_VERSION,
        OPT_JETSTREAM,
        OPT_SUBJECT_TEMPLATE
    };
    static const struct option longopts[] = {
        {"token", required_argument, NULL, OPT_TOKEN},
        {"user", required_argument, NULL, OPT_USER},
        {"password", required_argument, NULL, OPT_PASSWORD},
        {"creds", required_argument, NULL, OPT_CREDS},
        {"nkey", required_argument, NULL, OPT_NKEY},
        {"tls-ca", required_argument, NULL, OPT_CA},
        {"tls-cert", required_argument, NULL, OPT_CERT},
        {"tls-key", required_argument, NULL, OPT_KEY},
        {"log-format", required_argument, NULL, OPT_LOG},
        {"jetstream", no_argument, NULL, OPT_JETSTREAM},
        {"subject-template", required_argument, NULL, OPT_SUBJECT_TEMPLATE},
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    n->token = getenv("NATS_TOKEN");
    n->user = getenv("NATS_USER");
    n->password = getenv("NATS_PASSWORD");
    while ((c = getopt_long(argc, argv, "s:f:h", longopts, NULL)) != -1) {
        switch (c) {
        case 's': o->server = optarg; break;
        case 'f': o->pipe = optarg; break;
        case OPT_JETSTREAM: o->jetstream = true; break;
        case OPT_SUBJECT_TEMPLATE: o->subject_template = optarg; break;
        case OPT_TOKEN: n->token = optarg; break;
        case OPT_USER: n->user = optarg; break;
        case OPT_PASSWORD: n->password = optarg; break;
        case OPT_CREDS: n->credentials = optarg; break;
        case OPT_NKEY: n->nkey = optarg; break;
        case OPT_CA: n->tls_ca = optarg; break;
        case OPT_CERT: n->tls_cert = optarg; break;
        case OPT_KEY: n->tls_key = optarg; break;
        case OPT_LOG:
            if (log_set_format(optarg) != 0) {
                fprintf(stderr, "falco-nats: --log-format must be text or json\n");
                return 2;
            }
            break;
        case OPT_VERSION: printf("falco-nats %s\n", PLAYBOOKD_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || (n->user == NULL) != (n->password == NULL) || (n->tls_cert == NULL) != (n->tls_key == NULL) ||
        config_nats_auth_methods(n) > 1) {
        fprintf(stderr, "falco-nats: %s\n",
                optind < argc                     ? "unexpected argument"
                : config_nats_auth_methods(n) > 1 ? "choose one of token, user/password, creds or nkey (flags or "
                                                    "NATS_TOKEN, NATS_USER/NATS_PASSWORD)"
                                                  : "user/password and tls-cert/tls-key go in pairs");
        usage(stderr);
        return 2;
    }
    struct error err;
    if (subject_template_check(o->subject_template, &err) != 0) {
        fprintf(stderr, "falco-nats: %s\n", err.msg);
        return 2;
    }
    return -1;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps; a signal cuts it short. */
static void pause_ms(long long ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Starts the grace period for what was read to be delivered (once: the first call counts). */
static void begin_grace(struct forwarder *fw)
{
    if (fw->grace_end_ms == 0)
        fw->grace_end_ms = now_ms() + STOP_GRACE_MS;
}

/* Milliseconds left to deliver: unbounded until a stop signal, then what is left of the grace period. */
static long long time_left(struct forwarder *fw)
{
    if (stopping)
        begin_grace(fw);
    if (fw->grace_end_ms == 0)
        return LLONG_MAX;
    long long left = fw->grace_end_ms - now_ms();
    return left > 0 ? left : 0;
}

static bool connected(const struct forwarder *fw)
{
    return natsConnection_Status(fw->conn) == NATS_CONN_STATUS_CONNECTED;
}

/* Logs a failure to publish once, until publishing works again. */
static void note_failure(struct forwarder *fw, enum log_level level, const char *msg, const char *subject, natsStatus s)
{
    if (fw->failing)
        return;
    fw->failing = true;
    const char *detail = nats_GetLastError(NULL);
    log_kv(level, msg, "subject", subject, "error", natsStatus_GetText(s), "detail",
           detail != NULL && *detail ? detail : NULL, "hint",
           s == NATS_NO_RESPONDERS ? "no JetStream stream captures the subject, or JetStream is not ready yet" : NULL,
           NULL);
}

static void note_success(struct forwarder *fw)
{
    if (fw->failing)
        log_kv(LOG_INFO, "publishing works again", NULL);
    fw->failing = false;
}

/* FNV-1a, 64 bits, from offset basis h, over the bytes forwards or backwards. */
static uint64_t fnv1a(const unsigned char *p, size_t len, uint64_t h, bool backwards)
{
    for (size_t i = 0; i < len; i++) {
        h ^= p[backwards ? len - 1 - i : i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* A line's Nats-Msg-Id: two 64-bit hashes of its bytes. Equal lines are one alert (Falco's times are in ns). */
static const char *msg_id(const char *line, size_t len, char id[33])
{
    const unsigned char *p = (const unsigned char *)line;
    snprintf(id, 33, "%016" PRIx64 "%016" PRIx64, fnv1a(p, len, 0xcbf29ce484222325ULL, false),
             fnv1a(p, len, 0x84222325cbf29ce4ULL, true));
    return id;
}

/* JetStream: an error that no retry can mend. */
static bool permanent(natsStatus s, jsErrCode code)
{
    return s == NATS_MAX_PAYLOAD || s == NATS_INVALID_ARG || s == NATS_INVALID_SUBJECT ||
           code == JSStreamMessageExceedsMaximumErr;
}

/*
 * JetStream: publishes until the stream acknowledges, or until the grace period after a stop ends. While
 * NATS is down it waits rather than filling cnats's reconnect buffer. Every attempt carries the same
 * Nats-Msg-Id: an attempt stored whose ack was lost, then repeated, is stored once (the stream's window).
 */
static void publish_acked(struct forwarder *fw, const char *subject, const char *line, size_t len)
{
    char id[33];
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = msg_id(line, len, id);
    long long backoff = RETRY_MIN_MS;
    for (long long left; (left = time_left(fw)) > 0;) {
        if (!connected(fw)) { /* cnats is reconnecting */
            pause_ms(left < RETRY_MIN_MS ? left : RETRY_MIN_MS);
            continue;
        }
        jsErrCode code = 0;
        po.MaxWait = left < ACK_WAIT_MS ? left : ACK_WAIT_MS;
        natsStatus s = js_Publish(NULL, fw->js, subject, line, (int)len, &po, &code);
        if (s == NATS_OK) {
            fw->published++;
            note_success(fw);
            return;
        }
        if (permanent(s, code)) {
            log_kv(LOG_ERROR, "publish refused", "subject", subject, "error", natsStatus_GetText(s), NULL);
            break;
        }
        note_failure(fw, LOG_WARN, "publish not acknowledged, retrying", subject, s);
        pause_ms(left < backoff ? left : backoff);
        backoff = backoff * 2 < RETRY_MAX_MS ? backoff * 2 : RETRY_MAX_MS;
    }
    fw->undelivered++;
}

/* Core NATS: hands the line to cnats (its reconnect buffer, bounded, while NATS is down). */
static void publish_core(struct forwarder *fw, const char *subject, const char *line, size_t len)
{
    natsStatus s = natsConnection_Publish(fw->conn, subject, line, (int)len);
    if (s != NATS_OK) {
        fw->undelivered++;
        note_failure(fw, LOG_ERROR, "publish failed: lines are dropped", subject, s);
        return;
    }
    fw->unconfirmed++;
    note_success(fw);
}

/* Core NATS: the lines handed to cnats are delivered once the server answers a flush sent after them. */
static void confirm(struct forwarder *fw, long long timeout_ms)
{
    if (fw->unconfirmed == 0 || !connected(fw))
        return;
    if (natsConnection_FlushTimeout(fw->conn, timeout_ms) == NATS_OK) {
        fw->published += fw->unconfirmed;
        fw->unconfirmed = 0;
    }
}

/* Core NATS at exit: waits out a reconnection within the grace period; what is not confirmed is lost. */
static void confirm_at_exit(struct forwarder *fw)
{
    begin_grace(fw);
    while (fw->unconfirmed > 0 && !connected(fw) && time_left(fw) > 0)
        pause_ms(RETRY_MIN_MS);
    long long left = time_left(fw);
    confirm(fw, left > FLUSH_WAIT_MS / 4 ? left : FLUSH_WAIT_MS / 4);
    fw->undelivered += fw->unconfirmed;
    fw->unconfirmed = 0;
}

static void skip(struct forwarder *fw, const char *reason)
{
    fw->skipped++;
    log_kv(LOG_WARN, "skipped a line that is not a Falco alert", "reason", reason, NULL);
}

/* Publishes one line on the alert's subject; the line is published as Falco wrote it. */
static void forward_line(struct forwarder *fw, const char *line, size_t len)
{
    struct alert a;
    struct error err;
    char subject[SUBJECT_MAX];
    if (alert_parse(&a, line, len, &err) != 0) {
        skip(fw, err.msg);
        return;
    }
    int n = subject_from_template(fw->subject_template, &a, subject, sizeof(subject));
    alert_free(&a);
    if (n < 0) {
        skip(fw, "the rule has no letters or digits to make a subject, or the subject is too long");
        return;
    }
    if (fw->js != NULL)
        publish_acked(fw, subject, line, len);
    else
        publish_core(fw, subject, line, len);
}

static void end_line(struct forwarder *fw)
{
    size_t len = fw->len;
    if (len > 0 && fw->line[len - 1] == '\r')
        len--;
    if (fw->overflow)
        skip(fw, "line longer than 1 MiB");
    else if (len > 0)
        forward_line(fw, fw->line, len);
    fw->len = 0;
    fw->overflow = false;
}

/* Splits what was read into lines; a line over the limit is dropped whole. */
static void take(struct forwarder *fw, const char *data, size_t n)
{
    for (const char *end = data + n; data < end;) {
        const char *nl = memchr(data, '\n', (size_t)(end - data));
        size_t part = (size_t)((nl ? nl : end) - data);
        if (!fw->overflow && fw->len + part <= ALERT_MAX_BYTES) {
            memcpy(fw->line + fw->len, data, part);
            fw->len += part;
        } else {
            fw->overflow = true;
        }
        data += part;
        if (nl != NULL) {
            end_line(fw);
            data++;
        }
    }
}

/*
 * Waits until fd can be read (true) or a stop signal (false). The flag is looked at before every read: a
 * signal that lands outside a blocking call interrupts nothing (under a writer that keeps the pipe full,
 * reads never block). The timeout bounds the wait of a signal landing just before poll().
 */
static bool wait_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (!stopping)
        if (poll(&p, 1, POLL_MS) > 0)
            return true;
    return false;
}

/* Forwards everything until the writer closes (0) or a stop signal (-1). */
static int forward_stream(struct forwarder *fw, int fd)
{
    char chunk[CHUNK];
    while (wait_readable(fd)) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n > 0) {
            take(fw, chunk, (size_t)n);
            if (fw->js == NULL)
                confirm(fw, FLUSH_WAIT_MS);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0 && (fw->len > 0 || fw->overflow))
            end_line(fw); /* the writer's last line had no newline */
        if (n < 0)
            log_kv(LOG_ERROR, "read failed", "error", strerror(errno), NULL);
        return n == 0 ? 0 : -1;
    }
    if (fw->len > 0 && !fw->overflow)
        fw->undelivered++; /* a line cut by the stop: its end stays in the pipe */
    return -1;
}

/*
 * Opens the pipe (or file) for reading, waiting for it to exist; for a pipe also a write end, kept in
 * *keeper, so that writers can come and go without an end of file. -1 on a stop signal.
 */
static int open_input(const char *path, int *keeper)
{
    bool told = false;
    *keeper = -1;
    while (!stopping) {
        int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC); /* a pipe: does not wait for a writer */
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode))
            *keeper = open(path, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK); /* reads block again */
            return fd;
        }
        if (errno == EINTR)
            continue;
        if (!told)
            log_kv(LOG_WARN, "cannot open the pipe yet, retrying every second", "path", path, "error", strerror(errno),
                   NULL);
        told = true;
        sleep(1);
    }
    return -1;
}

static void run(struct forwarder *fw, const char *path)
{
    if (strcmp(path, "-") == 0) {
        forward_stream(fw, STDIN_FILENO);
        return;
    }
    int keeper, fd = open_input(path, &keeper);
    if (fd < 0)
        return;
    forward_stream(fw, fd); /* until a stop signal, or a regular file's end */
    close(fd);
    if (keeper >= 0)
        close(keeper);
}

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

/* Signals reach only the main thread (cnats threads inherit a mask without them) and cut its waits short. */
static void setup_signals(sigset_t *set)
{
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: poll(), read() return EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}

static int open_jetstream(struct forwarder *fw, struct error *err)
{
    jsOptions o;
    jsOptions_Init(&o);
    o.Wait = ACK_WAIT_MS;
    natsStatus s = natsConnection_JetStream(&fw->js, fw->conn, &o);
    return s == NATS_OK ? 0 : error_set(err, "nats: jetstream: %s", natsStatus_GetText(s));
}

/* The counts at exit; lines read but not delivered are an error, never counted as published. */
static void report(const struct forwarder *fw)
{
    char published[24], skipped[24], undelivered[24];
    snprintf(published, sizeof(published), "%lu", fw->published);
    snprintf(skipped, sizeof(skipped), "%lu", fw->skipped);
    snprintf(undelivered, sizeof(undelivered), "%lu", fw->undelivered);
    if (fw->undelivered > 0)
        log_kv(LOG_ERROR, "lines not delivered", "count", undelivered, "hint",
               fw->js ? "not acknowledged by the stream before the stop" : "NATS did not confirm them before exit",
               NULL);
    log_kv(LOG_INFO, "stopped", "published", published, "skipped", skipped, "not_delivered", undelivered, NULL);
}

int main(int argc, char **argv)
{
    struct config_nats n = {0};
    static char default_server[] = DEFAULT_SERVER;
    struct options o = {.server = default_server, .pipe = DEFAULT_PIPE, .subject_template = SUBJECT_TEMPLATE_DEFAULT};
    int rc = parse_flags(argc, argv, &n, &o);
    if (rc >= 0)
        return rc;
    n.servers.items = &o.server;
    n.servers.n = 1;

    sigset_t set;
    struct nats_link *link = NULL;
    struct error err;
    struct forwarder fw = {.line = malloc(ALERT_MAX_BYTES + 1), .subject_template = o.subject_template};
    setup_signals(&set);
    rc = 1;
    if (fw.line == NULL) {
        error_set(&err, "out of memory");
        goto out;
    }
    if (nats_link_create(&link, &n, "falco-nats", &err) != 0)
        goto out;
    fw.conn = nats_link_connection(link);
    if (o.jetstream && open_jetstream(&fw, &err) != 0)
        goto out;
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    char shown[512];
    log_kv(LOG_INFO, "forwarding", "from", o.pipe, "to", text_redact_url(o.server, shown, sizeof(shown)), "mode",
           o.jetstream ? "jetstream" : "core", "subject_template", o.subject_template, NULL);
    run(&fw, o.pipe);
    if (fw.js == NULL)
        confirm_at_exit(&fw);
    rc = 0;
out:
    if (rc != 0)
        log_kv(LOG_ERROR, "cannot start", "error", err.msg, NULL);
    jsCtx_Destroy(fw.js);
    nats_link_destroy(link, 0); /* what was read is delivered or counted by now */
    nats_CloseAndWait(5000);
    if (rc == 0)
        report(&fw);
    free(fw.line);
    return rc;
}
