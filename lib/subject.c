/* subject.c: the alert -> subject mapping falcosidekick uses, and NATS wildcard matching. */
#include "playbookd/subject.h"

#include <stdio.h>
#include <string.h>

static bool is_slug_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int subject_slug(const char *rule, char *out, size_t size)
{
    size_t n = 0;
    bool gap = false; /* a run of other characters is pending */
    for (const char *p = rule; *p; p++) {
        char c = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
        if (!is_slug_char(c)) {
            gap = true;
            continue;
        }
        if (gap && n > 0) {
            if (n + 1 >= size)
                return -1;
            out[n++] = '_';
        }
        gap = false;
        if (n + 1 >= size)
            return -1;
        out[n++] = c;
    }
    if (n == 0)
        return -1;
    out[n] = 0;
    return (int)n;
}

int subject_for_alert(const struct alert *a, char *out, size_t size)
{
    int head = snprintf(out, size, "falco.%s.", priority_token(a->priority));
    if (head < 0 || (size_t)head >= size)
        return -1;
    int slug = subject_slug(a->rule, out + head, size - (size_t)head);
    return slug < 0 ? -1 : head + slug;
}

/* The length of the token at s (up to '.' or the end). */
static size_t token_len(const char *s)
{
    return strcspn(s, ".");
}

int subject_pattern_check(const char *pattern, struct error *err)
{
    const char *p = pattern;
    if (*p == 0)
        return error_set(err, "empty pattern");
    for (;;) {
        size_t n = token_len(p);
        if (n == 0)
            return error_set(err, "pattern \"%s\" has an empty token", pattern);
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)p[i] <= ' ' || p[i] == 0x7f)
                return error_set(err, "pattern \"%s\" contains whitespace or a control character", pattern);
        bool wildcard = (n == 1 && (p[0] == '*' || p[0] == '>'));
        if (!wildcard && memchr(p, '*', n) != NULL)
            return error_set(err, "pattern \"%s\": '*' must be a whole token", pattern);
        if (!wildcard && memchr(p, '>', n) != NULL)
            return error_set(err, "pattern \"%s\": '>' must be a whole token", pattern);
        if (p[n] == 0)
            return 0;
        if (p[0] == '>' && n == 1)
            return error_set(err, "pattern \"%s\": '>' must be the last token", pattern);
        p += n + 1;
    }
}

/* True if every remaining token of s is non-empty. */
static bool tokens_well_formed(const char *s)
{
    for (;;) {
        size_t n = token_len(s);
        if (n == 0)
            return false;
        if (s[n] == 0)
            return true;
        s += n + 1;
    }
}

bool subject_matches(const char *pattern, const char *subject)
{
    const char *p = pattern, *s = subject;
    for (;;) {
        size_t pn = token_len(p), sn = token_len(s);
        if (sn == 0)
            return false; /* an empty subject token: malformed */
        if (pn == 1 && p[0] == '>')
            return tokens_well_formed(s); /* one or more tokens remain in s */
        if (!(pn == 1 && p[0] == '*') && (pn != sn || memcmp(p, s, pn) != 0))
            return false;
        bool p_end = p[pn] == 0, s_end = s[sn] == 0;
        if (p_end || s_end)
            return p_end && s_end;
        p += pn + 1;
        s += sn + 1;
    }
}
