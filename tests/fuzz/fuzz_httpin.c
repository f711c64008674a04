/*
 * fuzz_httpin.c: libFuzzer target for httpin_body, the core of the HTTP alert input: a request body
 * (NDJSON) from the network, its lines validated as the JetStream path does (dispatch_validate: alert_parse
 * and the subject). Some inputs make the queue fill after a few alerts. Checks: the status is one of the
 * documented 200, 400, 503; 200 only when every non-blank line was taken and there was one; the count of
 * accepted alerts is that of the lines taken before the one that stopped the body; the error names that
 * line ("line L: ..."), is valid UTF-8 and fits its buffer, and is empty on 200.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/dispatch.h"
#include "playbookd/httpin.h"
#include "playbookd/log.h"
#include "playbookd/text.h"

struct taker {
    size_t calls, taken, busy_after; /* busy_after: SIZE_MAX never */
    size_t last_line_start;          /* offset of the line last handed over */
    const char *body;
};

static enum httpin_verdict take(void *arg, const char *line, size_t len, struct error *why)
{
    struct taker *t = arg;
    char subject[SUBJECT_MAX];
    t->calls++;
    t->last_line_start = (size_t)(line - t->body);
    if (len == 0 || memchr(line, '\n', len) != NULL)
        abort(); /* a line is never blank nor holds a newline */
    if (dispatch_validate(line, len, "http", subject, why) != 0)
        return HTTPIN_REJECTED;
    if (t->taken == t->busy_after) {
        error_set(why, "the queue is full");
        return HTTPIN_BUSY;
    }
    t->taken++;
    return HTTPIN_ACCEPTED;
}

/* The 1-based line number at offset off of body. */
static size_t line_of(const char *body, size_t off)
{
    size_t n = 1;
    for (size_t i = 0; i < off; i++)
        n += body[i] == '\n';
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    if (devnull == NULL && (devnull = fopen("/dev/null", "w")) != NULL)
        log_set_stream(devnull); /* rejections are logged, escaped: exercised, not shown */
    const char *body = (const char *)data;
    struct taker t = {.busy_after = size % 16 >= 12 ? size % 4 : SIZE_MAX, .body = body};
    struct httpin_answer a;
    memset(&a, 0xa5, sizeof(a));
    httpin_body(body, size, take, &t, &a);

    if (a.status != 200 && a.status != 400 && a.status != 503)
        abort();
    if (memchr(a.error, 0, sizeof(a.error)) == NULL || !text_utf8_valid(a.error, strlen(a.error)))
        abort();
    if (a.accepted != t.taken || a.accepted > t.calls)
        abort();
    char want[32];
    snprintf(want, sizeof(want), "line %zu: ", t.calls ? line_of(body, t.last_line_start) : 0);
    switch (a.status) {
    case 200:
        if (a.error[0] != 0 || a.accepted == 0 || a.accepted != t.calls)
            abort();
        break;
    case 503:
        if (t.busy_after == SIZE_MAX || a.accepted != t.busy_after || strncmp(a.error, want, strlen(want)) != 0)
            abort();
        break;
    default:
        if (a.accepted == t.calls ? (a.accepted != 0 || strcmp(a.error, "the body holds no alert") != 0)
                                  : (a.accepted + 1 != t.calls || strncmp(a.error, want, strlen(want)) != 0))
            abort();
    }
    return 0;
}
