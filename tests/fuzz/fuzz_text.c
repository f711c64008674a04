/*
 * fuzz_text.c: libFuzzer target for text.c's escapers of attacker-controlled text. The first byte picks the
 * sizes, the rest is the text. Checks: text_utf8_sanitize's output is valid UTF-8, the input itself when that
 * was valid, and within 3 bytes per input byte; text_escape and text_escape_line write valid UTF-8 without
 * a raw control, line break or bidi character into their buffer, cut between escapes (a prefix of the uncut
 * result), '"' escaped by text_escape only; text_slack_escape leaves no raw '<' or '>' and no '&' but its
 * own entities; text_teams_escape leaves no raw control and no markdown syntax (emphasis, links, mentions,
 * HTML, code, headings, list markers) unescaped; all are within max_in bytes of the input plus the cut mark.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/text.h"

/* The code point of the well-formed UTF-8 sequence at p (checked valid by the caller) and its length. */
static size_t decode(const unsigned char *p, uint32_t *cp)
{
    size_t n = p[0] < 0x80 ? 1 : p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : 4;
    *cp = n == 1 ? p[0] : (uint32_t)(p[0] & (0x7f >> n));
    for (size_t i = 1; i < n; i++)
        *cp = (*cp << 6) | (p[i] & 0x3f);
    return n;
}

/* Valid UTF-8 with none of what text_escape_char shows as an escape: controls, separators, bidi. */
static void check_clean(const char *s)
{
    size_t len = strlen(s);
    if (!text_utf8_valid(s, len))
        abort();
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        uint32_t cp;
        p += decode(p, &cp);
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 || (cp >= 0x202a && cp <= 0x202e) ||
            (cp >= 0x2066 && cp <= 0x2069))
            abort();
    }
}

static bool ends_with_cut_mark(const char *s)
{
    size_t n = strlen(s), m = strlen("…");
    return n >= m && strcmp(s + n - m, "…") == 0;
}

static void check_sanitize(const char *data, size_t size)
{
    size_t n, replaced;
    char *out = text_utf8_sanitize(data, size, &n, &replaced);
    if (out == NULL)
        return;
    if (n > size * 3 || strlen(out) != n || !text_utf8_valid(out, n))
        abort();
    if (text_utf8_valid(data, size) != (replaced == 0) || (replaced == 0 && (n != size || memcmp(out, data, n) != 0)))
        abort();
    free(out);
}

/* text_escape or text_escape_line at every size up to the whole result: each cut is a prefix of it. */
static void check_escape(const char *text, bool line)
{
    size_t full_size = strlen(text) * 6 + 1;
    char *full = malloc(full_size), *cut = malloc(full_size);
    if (full == NULL || cut == NULL)
        goto out;
    (line ? text_escape_line : text_escape)(full, full_size, text);
    check_clean(full);
    size_t backslashes = 0;
    for (const char *p = full; *p; p++) {
        if (*p == '"' && !line && backslashes % 2 == 0)
            abort(); /* an unescaped quote would end the quoted string early */
        backslashes = *p == '\\' ? backslashes + 1 : 0;
    }
    if (backslashes % 2 != 0)
        abort(); /* a lone backslash at the end escapes what follows the string */
    for (size_t size = 1; size <= full_size && size < 40; size++) {
        (line ? text_escape_line : text_escape)(cut, size, text);
        size_t n = strlen(cut);
        if (n >= size || strncmp(cut, full, n) != 0 || (n + TEXT_ESCAPE_MAX < size && full[n] != 0))
            abort();
        check_clean(cut);
    }
out:
    free(full);
    free(cut);
}

static void check_slack(const char *text, size_t max_in)
{
    char *out = text_slack_escape(text, max_in);
    if (out == NULL)
        return;
    for (const char *p = out; *p; p++) {
        if (*p == '<' || *p == '>')
            abort();
        if (*p == '&' && strncmp(p, "&amp;", 5) != 0 && strncmp(p, "&lt;", 4) != 0 && strncmp(p, "&gt;", 4) != 0)
            abort();
    }
    bool cut = strlen(text) > max_in;
    if (cut != ends_with_cut_mark(out) && !ends_with_cut_mark(text))
        abort();
    if (text_utf8_valid(text, strlen(text)) && !text_utf8_valid(out, strlen(out)))
        abort(); /* cut on a character boundary */
    free(out);
}

/* Markdown syntax that a backslash must precede (teams_markdown_char's set). */
static bool markdown_char(char c)
{
    return c != 0 && strchr("`*_[]()<>#~&", c) != NULL;
}

static void check_teams(const char *text, size_t max_in)
{
    char *out = text_teams_escape(text, max_in);
    if (out == NULL)
        return;
    check_clean(out);
    /* A list marker starts a line, after at most three spaces (CommonMark): "- x", "  + x", " 12. x". */
    bool start = true, digits = false; /* only spaces so far; only spaces then digits so far */
    for (const char *p = out; *p; p++) {
        if (*p == '\\') {
            if (p[1] == 0)
                abort(); /* a trailing backslash */
            p++;
            start = digits = false;
            continue;
        }
        if (markdown_char(*p) || (start && (*p == '-' || *p == '+')) || (digits && *p == '.'))
            abort();
        digits = (start || digits) && *p >= '0' && *p <= '9';
        start = start && *p == ' ';
    }
    if (strlen(out) > max_in * 7 + strlen("…"))
        abort();
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t max_in = data[0] < 0xf0 ? data[0] : size; /* mostly small cuts, sometimes none */
    char *text = malloc(size);
    if (text == NULL)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;

    check_sanitize((const char *)data + 1, size - 1);
    check_escape(text, false);
    check_escape(text, true);
    check_slack(text, max_in);
    check_teams(text, max_in);

    char copy[32];
    text_copy(copy, (size_t)data[0] % sizeof(copy) + 1, text);
    if (strncmp(copy, text, strlen(copy)) != 0 ||
        (text_utf8_valid(text, strlen(text)) && !text_utf8_valid(copy, strlen(copy))))
        abort();

    size_t n;
    char *decoded = text_base64_decode(text, &n);
    if (decoded != NULL && (n > strlen(text) / 4 * 3 + 2 || decoded[n] != 0))
        abort();
    free(decoded);

    char redacted[64];
    text_redact_url(text, redacted, sizeof(redacted));
    if (strlen(redacted) >= sizeof(redacted))
        abort();
    free(text);
    return 0;
}
