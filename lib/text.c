/* text.c: helpers for untrusted text: UTF-8 validation, Slack escaping, bounded copies. */
#include "playbookd/text.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the well-formed UTF-8 sequence at p (at most n bytes), or 0 if it is malformed. */
static size_t utf8_sequence(const unsigned char *p, size_t n)
{
    if (p[0] >= 0x01 && p[0] <= 0x7f)
        return 1;
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
    return len;
}

bool text_utf8_valid(const char *data, size_t len)
{
    const unsigned char *p = (const unsigned char *)data;
    while (len > 0) {
        size_t n = utf8_sequence(p, len);
        if (n == 0)
            return false;
        p += n, len -= n;
    }
    return true;
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
    if (cut) {
        memcpy(o, "…", sizeof("…") - 1);
        o += sizeof("…") - 1;
    }
    *o = 0;
    return out;
}

char *text_copy(char *dst, size_t size, const char *src)
{
    size_t n = utf8_prefix(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = 0;
    return dst;
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

char *text_redact_url(const char *url, char *buf, size_t size)
{
    const char *scheme = strstr(url, "://");
    const char *host = scheme ? scheme + 3 : url;
    const char *at = memchr(host, '@', strcspn(host, "/?#"));
    if (at == NULL)
        snprintf(buf, size, "%s", url);
    else
        snprintf(buf, size, "%.*s***%s", (int)(host - url), url, at);
    return buf;
}
