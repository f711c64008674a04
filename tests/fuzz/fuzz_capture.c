/*
 * fuzz_capture.c: libFuzzer target for the log text capture-logs stores as evidence (text.c's text_log_tail
 * and text_fit_prefix). The first four bytes pick the caps (stored, as JSON text, the read's limit, the KiB the
 * marker names), the rest is the log as the kubelet returned it. Checks, against a reference written here: the
 * result is valid UTF-8 without NUL, within both caps (or the markers' room); uncut, it is the sanitized log;
 * cut, it is exactly the marker line naming the bytes dropped, then the newest part of the sanitized log: the
 * longest suffix that fits, moved to the first line start within it; the read-limit line ends it exactly when
 * the log reached that limit. text_fit_prefix gives the longest prefix within both caps, on a character boundary.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/text.h"

static bool continuation(char c)
{
    return ((unsigned char)c & 0xc0) == 0x80;
}

/* The reference: where the kept part of s[0..n) starts when it does not fit room and wire_room. */
static size_t expected_start(const char *s, size_t n, size_t room, size_t wire_room)
{
    size_t k = n, wire = 0, best = n;
    while (k > 0 && n - (k - 1) <= room && (wire += text_json_size(s + k - 1, 1)) <= wire_room)
        if (!continuation(s[--k]))
            best = k; /* the longest suffix that fits and starts a character */
    if (best == 0)
        return 0;
    for (size_t p = best; p < n; p++)
        if (s[p - 1] == '\n')
            return p; /* the first line start within it */
    return best;
}

static void check_tail(const char *raw, size_t raw_len, const struct text_log_caps *caps)
{
    size_t len, n, replaced;
    char *out = text_log_tail(raw, raw_len, caps, &len);
    char *s = text_utf8_sanitize(raw, raw_len, &n, &replaced);
    char head[160], tail[160];
    if (out == NULL || s == NULL)
        goto out;
    if (strlen(out) != len || !text_utf8_valid(out, len))
        abort();
    size_t room = caps->stored_max > TEXT_LOG_MARKER_MAX ? caps->stored_max - TEXT_LOG_MARKER_MAX : 0;
    size_t wire_room = caps->wire_max > 2 * TEXT_LOG_MARKER_MAX ? caps->wire_max - 2 * TEXT_LOG_MARKER_MAX : 0;
    if (len > room + TEXT_LOG_MARKER_MAX || text_json_size(out, len) > wire_room + 2 * TEXT_LOG_MARKER_MAX)
        abort(); /* within both caps, or the markers' room when a cap is smaller */
    bool fits = n <= room && text_json_size(s, n) <= wire_room;
    size_t start = fits ? 0 : expected_start(s, n, room, wire_room);
    if (!fits && start == 0)
        abort(); /* the reference cannot keep everything when it does not fit */
    head[0] = tail[0] = 0;
    if (start > 0)
        snprintf(head, sizeof(head), "[playbookd: %zu bytes of older lines dropped: the logs are capped at %zu KiB]\n",
                 start, caps->cap_kib);
    if (raw_len >= caps->read_limit)
        snprintf(tail, sizeof(tail), "%s[playbookd: the read stopped at limitBytes=%zu: later lines not read]\n",
                 n > start && s[n - 1] != '\n' ? "\n" : "", caps->read_limit);
    size_t head_len = strlen(head), tail_len = strlen(tail);
    if (head_len + tail_len > TEXT_LOG_MARKER_MAX || len != head_len + (n - start) + tail_len ||
        memcmp(out, head, head_len) != 0 || memcmp(out + head_len, s + start, n - start) != 0 ||
        memcmp(out + len - tail_len, tail, tail_len) != 0)
        abort();
out:
    free(out);
    free(s);
}

/* text_fit_prefix: within both caps, the longest such prefix on a character boundary (when text is valid). */
static void check_prefix(const char *text, size_t n, size_t stored_max, size_t wire_max, bool valid)
{
    size_t end = text_fit_prefix(text, n, stored_max, wire_max);
    if (end > n || end > stored_max || text_json_size(text, end) > wire_max)
        abort();
    if (!valid || end == n)
        return;
    if (continuation(text[end]))
        abort();
    size_t next = end + 1;
    while (next < n && continuation(text[next]))
        next++;
    if (next <= stored_max && text_json_size(text, next) <= wire_max)
        abort(); /* the next character would have fit */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    struct text_log_caps caps = {
        .stored_max = (size_t)data[0] * 8, /* below and above TEXT_LOG_MARKER_MAX */
        .wire_max = (size_t)data[1] * 8,
        .read_limit = data[2] < 0xf0 ? (size_t)data[2] * 16 : SIZE_MAX, /* mostly a read that may reach it */
        .cap_kib = data[3] < 0xf0 ? data[3] : SIZE_MAX,                 /* the widest marker too */
    };
    const char *raw = (const char *)data + 4;
    size_t raw_len = size - 4, n, replaced;

    check_tail(raw, raw_len, &caps);

    check_prefix(raw, raw_len, caps.stored_max, caps.wire_max, text_utf8_valid(raw, raw_len));
    char *s = text_utf8_sanitize(raw, raw_len, &n, &replaced);
    if (s != NULL)
        check_prefix(s, n, caps.stored_max, caps.wire_max, true);
    free(s);
    return 0;
}
