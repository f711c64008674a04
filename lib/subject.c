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

/* The tokens of a subject template. */
static const char *const template_tokens[] = {"<priority>", "<rule>"};
enum { TOKEN_PRIORITY, TOKEN_RULE, TOKEN_NONE };

/* Which token of the template starts at s, if any. */
static int template_token(const char *s)
{
    for (int t = TOKEN_PRIORITY; t < TOKEN_NONE; t++)
        if (strncmp(s, template_tokens[t], strlen(template_tokens[t])) == 0)
            return t;
    return TOKEN_NONE;
}

int subject_from_template(const char *tmpl, const struct alert *a, char *out, size_t size)
{
    size_t n = 0;
    for (const char *p = tmpl; *p;) {
        int token = template_token(p), w;
        if (token == TOKEN_PRIORITY)
            w = snprintf(out + n, size - n, "%s", priority_token(a->priority));
        else if (token == TOKEN_RULE)
            w = subject_slug(a->rule, out + n, size - n);
        else
            w = snprintf(out + n, size - n, "%c", *p);
        if (w < 0 || (size_t)w >= size - n)
            return -1;
        n += (size_t)w;
        p += token == TOKEN_NONE ? 1 : strlen(template_tokens[token]);
    }
    return n > 0 ? (int)n : -1;
}

int subject_template_check(const char *tmpl, struct error *err)
{
    char shown[SUBJECT_MAX];
    size_t n = 0;
    if (strlen(tmpl) > SUBJECT_MAX / 2)
        return error_set(err, "subject template: longer than %d bytes", SUBJECT_MAX / 2);
    for (const char *p = tmpl; *p;) { /* each token as a one-letter stand-in */
        int token = template_token(p);
        if (token == TOKEN_NONE && (*p == '<' || *p == '>' || *p == '*'))
            return error_set(err, "subject template: '%c' is not allowed (tokens: <priority>, <rule>)", *p);
        shown[n++] = token == TOKEN_NONE ? *p : 'x';
        p += token == TOKEN_NONE ? 1 : strlen(template_tokens[token]);
    }
    shown[n] = 0;
    struct error why;
    if (subject_pattern_check(shown, &why) != 0)
        return error_set(err, "subject template: not a valid subject (an empty token, whitespace or a control)");
    return 0;
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
