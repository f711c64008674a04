/* text.c: helpers for untrusted text: UTF-8 validation, escaping for Slack and for one-line logs, bounded
 * copies, URLs with their credentials redacted, logs cut to a size as JSON text keeping their newest lines. */
#include "playbookd/text.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the well-formed UTF-8 sequence at p (at most n bytes), its code point in *out, or 0 if it is
 * malformed (NUL, overlong, a surrogate, beyond U+10FFFF, cut short). Reads no byte past a NUL. */
static size_t utf8_decode(const unsigned char *p, size_t n, uint32_t *out)
{
    if (p[0] >= 0x01 && p[0] <= 0x7f) {
        *out = p[0];
        return 1;
    }
    size_t len;
    uint32_t cp, min;
    if ((p[0] & 0xe0) == 0xc0)
        len = 2, cp = p[0] & 0x1f, min = 0x80;
    else if ((p[0] & 0xf0) == 0xe0)
        len = 3, cp = p[0] & 0x0f, min = 0x800;
    else if ((p[0] & 0xf8) == 0xf0)
        len = 4, cp = p[0] & 0x07, min = 0x10000;
    else
        return 0; /* NUL, a stray continuation byte, or 0xf8..0xff */
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    *out = cp;
    return len;
}

bool text_utf8_valid(const char *data, size_t len)
{
    const unsigned char *p = (const unsigned char *)data;
    uint32_t cp;
    while (len > 0) {
        if (*p >= 0x01 && *p <= 0x7f) { /* ASCII, most of any alert: no decoding */
            p++, len--;
            continue;
        }
        size_t n = utf8_decode(p, len, &cp);
        if (n == 0)
            return false;
        p += n, len -= n;
    }
    return true;
}

char *text_utf8_sanitize(const char *data, size_t len, size_t *out_len, size_t *replaced)
{
    const unsigned char *p = (const unsigned char *)data;
    char *out = len <= (SIZE_MAX - 1) / 3 ? malloc(len * 3 + 1) : NULL, *o = out; /* a byte: at worst U+FFFD */
    uint32_t cp;
    *replaced = 0;
    if (out == NULL)
        return NULL;
    while (len > 0) {
        size_t n = utf8_decode(p, len, &cp);
        if (n == 0) {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3, n = 1, (*replaced)++;
        } else {
            memcpy(o, p, n);
            o += n;
        }
        p += n, len -= n;
    }
    *o = 0;
    *out_len = (size_t)(o - out);
    return out;
}

size_t text_json_size(const char *s, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        w += ch == '"' || ch == '\\' || ch == '\b' || ch == '\f' || ch == '\n' || ch == '\r' || ch == '\t' ? 2
             : ch < 0x20                                                                                   ? 6
                                                                                                           : 1;
    }
    return w;
}

size_t text_fit_prefix(const char *text, size_t n, size_t stored_max, size_t wire_max)
{
    size_t end = 0, wire = 0;
    while (end < n && end < stored_max && wire + text_json_size(text + end, 1) <= wire_max)
        wire += text_json_size(text + end++, 1);
    while (end > 0 && end < n && ((unsigned char)text[end] & 0xc0) == 0x80)
        end--;
    return end;
}

/* Where the longest suffix of text[0..n) (valid UTF-8) that fits both budgets starts, moved forward to
 * the start of a line when one begins within it, else to a character boundary. */
static size_t fit_suffix(const char *text, size_t n, size_t stored_max, size_t wire_max)
{
    size_t start = n, wire = 0;
    while (start > 0 && n - (start - 1) <= stored_max) {
        size_t w = text_json_size(text + start - 1, 1);
        if (wire + w > wire_max)
            break;
        wire += w, start--;
    }
    if (start == 0)
        return 0;
    const char *nl = memchr(text + start - 1, '\n', n - (start - 1));
    if (nl != NULL && nl + 1 < text + n)
        return (size_t)(nl + 1 - text);
    while (start < n && ((unsigned char)text[start] & 0xc0) == 0x80)
        start++;
    return start;
}

/* Buffers for text_log_tail's marker lines: with numbers of 20 digits at most, the first is at most 112
 * bytes and the second 88, so that both together fit TEXT_LOG_MARKER_MAX. */
#define LOG_HEAD_MAX 128
#define LOG_TAIL_MAX 96

char *text_log_tail(const char *raw, size_t raw_len, const struct text_log_caps *caps, size_t *len)
{
    size_t n, replaced;
    char *text = text_utf8_sanitize(raw, raw_len, &n, &replaced), *value = NULL;
    size_t room = caps->stored_max > TEXT_LOG_MARKER_MAX ? caps->stored_max - TEXT_LOG_MARKER_MAX : 0;
    size_t wire_room = caps->wire_max > 2 * TEXT_LOG_MARKER_MAX ? caps->wire_max - 2 * TEXT_LOG_MARKER_MAX : 0;
    char head[LOG_HEAD_MAX] = "", tail[LOG_TAIL_MAX] = "";
    if (text == NULL)
        return NULL;
    size_t start = n <= room && text_json_size(text, n) <= wire_room ? 0 : fit_suffix(text, n, room, wire_room);
    if (start > 0)
        snprintf(head, sizeof(head), "[playbookd: %zu bytes of older lines dropped: the logs are capped at %zu KiB]\n",
                 start, caps->cap_kib);
    if (raw_len >= caps->read_limit)
        snprintf(tail, sizeof(tail), "%s[playbookd: the read stopped at limitBytes=%zu: later lines not read]\n",
                 n > start && text[n - 1] != '\n' ? "\n" : "", caps->read_limit);
    size_t head_len = strlen(head), tail_len = strlen(tail);
    *len = head_len + (n - start) + tail_len;
    if ((value = malloc(*len + 1)) != NULL) {
        memcpy(value, head, head_len);
        memcpy(value + head_len, text + start, n - start);
        memcpy(value + head_len + (n - start), tail, tail_len + 1);
    }
    free(text);
    return value;
}

/* The largest prefix of s no longer than max bytes that ends on a character boundary. */
static size_t utf8_prefix(const char *s, size_t max)
{
    size_t len = strlen(s);
    if (len <= max)
        return len;
    while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
        max--;
    return max;
}

/* Appends "…" (3 bytes), the mark of a text cut short; returns the new end. */
static char *append_cut_mark(char *o)
{
    memcpy(o, "…", sizeof("…") - 1);
    return o + sizeof("…") - 1;
}

char *text_slack_escape(const char *in, size_t max_in)
{
    size_t n = utf8_prefix(in, max_in);
    bool cut = in[n] != 0;
    char *out = malloc(n * 5 + sizeof("…"));
    if (out == NULL)
        return NULL;
    char *o = out;
    for (size_t i = 0; i < n; i++) {
        const char *rep = NULL;
        switch (in[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        default: *o++ = in[i]; continue;
        }
        size_t len = strlen(rep);
        memcpy(o, rep, len);
        o += len;
    }
    if (cut)
        o = append_cut_mark(o);
    *o = 0;
    return out;
}

void text_utf8_trim(char *s)
{
    size_t n = strlen(s), i = n;
    while (i > 0 && n - i < 3 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
        i--; /* back over continuation bytes to the lead byte */
    if (i == 0)
        return;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t want = (lead & 0xe0) == 0xc0 ? 2 : (lead & 0xf0) == 0xe0 ? 3 : (lead & 0xf8) == 0xf0 ? 4 : 1;
    if (n - (i - 1) < want)
        s[i - 1] = 0;
}

char *text_copy(char *dst, size_t size, const char *src)
{
    size_t n = utf8_prefix(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = 0;
    return dst;
}

/* Whether a code point is shown as \uXXXX: controls (C0, DEL, C1), line and paragraph separators, bidi
 * overrides and isolates (they can make a line read differently from what it holds). */
static bool escaped_code_point(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 || (cp >= 0x202a && cp <= 0x202e) ||
           (cp >= 0x2066 && cp <= 0x2069);
}

size_t text_plain_run(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
        p++;
    return (size_t)(p - (const unsigned char *)s);
}

size_t text_escape_char(const char *s, char out[TEXT_ESCAPE_MAX])
{
    const unsigned char *p = (const unsigned char *)s;
    uint32_t cp;
    if (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\') { /* the common case: printable ASCII */
        out[0] = (char)*p, out[1] = 0;
        return 1;
    }
    out[0] = 0;
    if (*p == 0)
        return 0;
    size_t n = utf8_decode(p, 4, &cp);
    if (n == 0) {
        memcpy(out, "\\ufffd", sizeof("\\ufffd"));
        return 1; /* one byte that is not UTF-8: resynchronise on the next */
    }
    if (cp == '"' || cp == '\\')
        out[0] = '\\', out[1] = (char)cp, out[2] = 0;
    else if (cp == '\n')
        memcpy(out, "\\n", sizeof("\\n"));
    else if (cp == '\t')
        memcpy(out, "\\t", sizeof("\\t"));
    else if (escaped_code_point(cp))
        snprintf(out, TEXT_ESCAPE_MAX, "\\u%04x", (unsigned)cp);
    else
        memcpy(out, s, n), out[n] = 0;
    return n;
}

/* src escaped into dst as text_escape_char does, '"' kept as it is when keep_quotes. */
static char *escape_into(char *dst, size_t size, const char *src, bool keep_quotes)
{
    char one[TEXT_ESCAPE_MAX];
    size_t len = 0, n;
    for (;;) {
        size_t run = text_plain_run(src); /* as it is, up to what fits */
        run = len + run < size ? run : size - 1 - len;
        memcpy(dst + len, src, run);
        len += run, src += run;
        if ((n = text_escape_char(src, one)) == 0)
            break;
        if (keep_quotes && *src == '"')
            memcpy(one, "\"", 2);
        size_t m = strlen(one);
        if (len + m >= size)
            break;
        memcpy(dst + len, one, m);
        len += m;
        src += n;
    }
    dst[len] = 0;
    return dst;
}

/* Whether the ASCII character c is markdown syntax for Teams (the backslash itself is text_escape_char's):
 * emphasis, links, mentions and HTML, code, headings, strike-through, entities, and list markers where a list
 * item can start: '-' or '+' after nothing but spaces (start), '.' after spaces and digits (digits). */
static bool teams_markdown_char(char c, bool start, bool digits)
{
    if (c != 0 && strchr("`*_[]()<>#~&", c) != NULL)
        return true;
    return (start && (c == '-' || c == '+')) || (digits && c == '.');
}

char *text_teams_escape(const char *in, size_t max_in)
{
    size_t n = utf8_prefix(in, max_in), used = 0;
    bool cut = in[n] != 0, start = true, digits = false; /* only spaces so far; only spaces, then digits */
    char *out = malloc(n * 7 + sizeof("…")), *o = out, one[TEXT_ESCAPE_MAX];
    if (out == NULL)
        return NULL;
    while (used < n) {
        size_t len = text_escape_char(in + used, one);
        char c = in[used];
        if (c == '"')
            one[0] = c, one[1] = 0; /* no syntax in markdown */
        else if ((one[0] == '\\' && c != '\\') || teams_markdown_char(c, start, digits))
            *o++ = '\\'; /* markdown then shows the next character (or the backslash of \n, \u202e) as text */
        size_t m = strlen(one);
        memcpy(o, one, m);
        o += m;
        digits = (start || digits) && c >= '0' && c <= '9';
        start = start && c == ' ';
        used += len;
    }
    if (cut)
        o = append_cut_mark(o);
    *o = 0;
    return out;
}

char *text_escape(char *dst, size_t size, const char *src)
{
    return escape_into(dst, size, src, false);
}

char *text_escape_line(char *dst, size_t size, const char *src)
{
    return escape_into(dst, size, src, true);
}

static int base64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

char *text_base64_decode(const char *in, size_t *len)
{
    char *out = malloc(strlen(in) / 4 * 3 + 4);
    uint32_t acc = 0;
    int bits = 0, pad = 0;
    size_t n = 0;
    if (out == NULL)
        return NULL;
    for (const char *p = in; *p; p++) {
        if (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
            continue;
        if (*p == '=') {
            pad++;
            continue;
        }
        int v = base64_value(*p);
        if (v < 0 || pad > 0)
            goto invalid;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    if (pad > 2 || bits >= 6)
        goto invalid;
    out[n] = 0;
    *len = n;
    return out;
invalid:
    free(out);
    return NULL;
}

char *text_read_file(const char *path, size_t max, size_t *len, struct error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        error_set(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *text = malloc(max + 1);
    size_t n = text ? fread(text, 1, max + 1, f) : 0;
    int failed = text == NULL || ferror(f);
    fclose(f);
    if (failed || n > max) {
        error_set(err, failed ? "%s: cannot read" : "%s: larger than the limit", path);
        free(text);
        return NULL;
    }
    text[n] = 0;
    *len = n;
    return text;
}

/* Where the part after a URL's scheme starts ("nats://" is a scheme; "u:p://x" with a ':' before it is not). */
static const char *after_scheme(const char *url)
{
    const char *sep = strstr(url, "://");
    if (sep == NULL || sep == url || !isalpha((unsigned char)url[0]))
        return url;
    for (const char *c = url; c < sep; c++)
        if (!isalnum((unsigned char)*c) && *c != '+' && *c != '-' && *c != '.')
            return url;
    return sep + 3;
}

char *text_redact_url(const char *url, char *buf, size_t size)
{
    const char *start = after_scheme(url);
    const char *at = strrchr(start, '@'); /* a password may hold '/', '?', '#' and '@': the last '@' ends it */
    if (at == NULL)
        snprintf(buf, size, "%s", url);
    else
        snprintf(buf, size, "%.*s***%s", (int)(start - url), url, at);
    return buf;
}
