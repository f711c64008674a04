/*
 * main.c: falco-nats, the forwarder of the original design. Reads Falco's JSON alerts, one per line,
 * from a named pipe or stdin, and publishes each on falco.<priority>.<slug> over one persistent NATS
 * connection. A line that is not a Falco alert is logged and skipped. SIGTERM and SIGINT flush what is
 * buffered and exit 0.
 *
 * Writers of the pipe may come and go (Falco restarts). A pipe left with no reader and no writer loses
 * what is in it, so rather than reopening after each writer's end of file (losing lines written in
 * between), falco-nats holds a write end of the pipe itself: reads then never see an end of file.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "playbookd/alert.h"
#include "playbookd/log.h"
#include "playbookd/nats.h"
#include "playbookd/subject.h"
#include "playbookd/text.h"

#define DEFAULT_SERVER "nats://nats:4222"
#define DEFAULT_PIPE "/var/run/falco/nats"
#define CHUNK 65536

static volatile sig_atomic_t stopping;

struct forwarder {
    natsConnection *conn;
    char *line; /* ALERT_MAX_BYTES + 1 */
    size_t len;
    bool overflow; /* the current line is longer than an alert may be */
    unsigned long published, skipped;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: falco-nats [-s NATS_URL] [-f PIPE|-] [--token T] [--user U --password P] [--creds FILE]\n"
                 "                  [--tls-ca FILE] [--tls-cert FILE --tls-key FILE] [--log-format text|json]\n"
                 "  -s URL   NATS server (default " DEFAULT_SERVER ")\n"
                 "  -f PIPE  named pipe Falco writes JSON alerts to (default " DEFAULT_PIPE "), or - for stdin\n"
                 "  NATS_TOKEN, NATS_USER and NATS_PASSWORD in the environment are used when the flags are absent.\n");
}

/* Returns -1 to continue, or the exit status. */
static int parse_flags(int argc, char **argv, struct config_nats *n, char **server, const char **pipe)
{
    enum { OPT_TOKEN = 256, OPT_USER, OPT_PASSWORD, OPT_CREDS, OPT_CA, OPT_CERT, OPT_KEY, OPT_LOG, OPT_VERSION };
    static const struct option longopts[] = {
        {"token", required_argument, NULL, OPT_TOKEN},
        {"user", required_argument, NULL, OPT_USER},
        {"password", required_argument, NULL, OPT_PASSWORD},
        {"creds", required_argument, NULL, OPT_CREDS},
        {"tls-ca", required_argument, NULL, OPT_CA},
        {"tls-cert", required_argument, NULL, OPT_CERT},
        {"tls-key", required_argument, NULL, OPT_KEY},
        {"log-format", required_argument, NULL, OPT_LOG},
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
        case 's': *server = optarg; break;
        case 'f': *pipe = optarg; break;
        case OPT_TOKEN: n->token = optarg; break;
        case OPT_USER: n->user = optarg; break;
        case OPT_PASSWORD: n->password = optarg; break;
        case OPT_CREDS: n->credentials = optarg; break;
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
    if (optind < argc || (n->user == NULL) != (n->password == NULL) || (n->tls_cert == NULL) != (n->tls_key == NULL)) {
        fprintf(stderr, "falco-nats: %s\n",
                optind < argc ? "unexpected argument" : "user/password and tls-cert/tls-key go in pairs");
        usage(stderr);
        return 2;
    }
    return -1;
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
    int n = subject_for_alert(&a, subject, sizeof(subject));
    alert_free(&a);
    if (n < 0) {
        skip(fw, "the rule has no letters or digits to make a subject");
        return;
    }
    natsStatus s = natsConnection_Publish(fw->conn, subject, line, (int)len);
    if (s != NATS_OK) {
        fw->skipped++;
        log_kv(LOG_ERROR, "publish failed", "subject", subject, "error", natsStatus_GetText(s), NULL);
        return;
    }
    fw->published++;
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

/* Forwards everything until the writer closes (0) or a stop signal (-1). */
static int forward_stream(struct forwarder *fw, int fd)
{
    char chunk[CHUNK];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n > 0) {
            take(fw, chunk, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR && !stopping)
            continue;
        if (n == 0 && (fw->len > 0 || fw->overflow))
            end_line(fw); /* the writer's last line had no newline */
        if (n < 0 && errno != EINTR)
            log_kv(LOG_ERROR, "read failed", "error", strerror(errno), NULL);
        return n == 0 ? 0 : -1;
    }
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

/* Signals reach only the main thread (cnats threads inherit a mask without them) and interrupt its reads. */
static void setup_signals(sigset_t *set)
{
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: open() and read() return EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}

int main(int argc, char **argv)
{
    struct config_nats n = {0};
    static char default_server[] = DEFAULT_SERVER;
    char *server = default_server;
    const char *pipe = DEFAULT_PIPE;
    int rc = parse_flags(argc, argv, &n, &server, &pipe);
    if (rc >= 0)
        return rc;
    n.servers.items = &server;
    n.servers.n = 1;

    sigset_t set;
    struct nats_link *link = NULL;
    struct error err;
    struct forwarder fw = {.line = malloc(ALERT_MAX_BYTES + 1)};
    setup_signals(&set);
    if (fw.line == NULL || nats_link_create(&link, &n, "falco-nats", &err) != 0) {
        log_kv(LOG_ERROR, "cannot start", "error", fw.line ? err.msg : "out of memory", NULL);
        free(fw.line);
        return 1;
    }
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    fw.conn = nats_link_connection(link);
    char shown[512];
    log_kv(LOG_INFO, "forwarding", "from", pipe, "to", text_redact_url(server, shown, sizeof(shown)), NULL);
    run(&fw, pipe);

    char published[24], skipped[24];
    snprintf(published, sizeof(published), "%lu", fw.published);
    snprintf(skipped, sizeof(skipped), "%lu", fw.skipped);
    nats_link_destroy(link, 5000); /* flushes what is buffered */
    nats_CloseAndWait(5000);
    log_kv(LOG_INFO, "stopped", "published", published, "skipped", skipped, NULL);
    free(fw.line);
    return 0;
}
