/* fuzz_subject.c: libFuzzer target for subject_pattern_check/subject_matches (against a reference) and subject_slug. */
/* The input is split at its first NUL or newline into a pattern and a subject; the slug is of the whole input. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/subject.h"

/* The next token of s at *pos (up to '.' or the end); false when s is exhausted. */
static bool next_token(const char *s, size_t *pos, bool *done, const char **tok, size_t *len)
{
    if (*done)
        return false;
    *tok = s + *pos;
    *len = strcspn(*tok, ".");
    if ((*tok)[*len] == 0)
        *done = true;
    else
        *pos += *len + 1;
    return true;
}

/* NATS matching written the obvious way, for valid patterns. */
static bool reference_match(const char *pattern, const char *subject)
{
    size_t pp = 0, sp = 0;
    bool pdone = false, sdone = false;
    const char *pt, *st;
    size_t pl, sl;
    /* A subject with an empty token never matches. */
    size_t pos = 0;
    bool done = false;
    while (next_token(subject, &pos, &done, &st, &sl))
        if (sl == 0)
            return false;
    for (;;) {
        bool hp = next_token(pattern, &pp, &pdone, &pt, &pl);
        bool hs = next_token(subject, &sp, &sdone, &st, &sl);
        if (!hp || !hs)
            return !hp && !hs;
        if (pl == 1 && pt[0] == '>')
            return true; /* hs: at least one token remains */
        if (!(pl == 1 && pt[0] == '*') && (pl != sl || memcmp(pt, st, pl) != 0))
            return false;
    }
}

static void check_slug(const char *text)
{
    char out[512];
    size_t in_len = strlen(text);
    int n = subject_slug(text, out, sizeof(out));
    if (n < 0)
        return;
    if ((size_t)n != strlen(out) || (size_t)n > in_len || n == 0)
        abort();
    if (out[0] == '_' || out[n - 1] == '_' || strstr(out, "__") != NULL)
        abort();
    for (int i = 0; i < n; i++)
        if (!((out[i] >= 'a' && out[i] <= 'z') || (out[i] >= '0' && out[i] <= '9') || out[i] == '_'))
            abort();
    /* Exactly n + 1 bytes are needed. */
    char again[512];
    if (subject_slug(text, again, (size_t)n + 1) != n || strcmp(again, out) != 0)
        abort();
    if (subject_slug(text, again, (size_t)n) != -1)
        abort();
    /* A slug is its own slug, and a valid subject token. */
    if (subject_slug(out, again, sizeof(again)) != n || strcmp(again, out) != 0)
        abort();
    if (subject_pattern_check(out, NULL) != 0 || !subject_matches(out, out) || !subject_matches("*", out))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    buf[size] = 0;

    /* The slug of the whole input as a C string (up to its first NUL). */
    check_slug(buf);

    size_t cut = 0;
    while (cut < size && buf[cut] != 0 && buf[cut] != '\n')
        cut++;
    char *pattern = malloc(cut + 1);
    const char *subject = cut < size ? buf + cut + 1 : buf + size;
    if (pattern == NULL) {
        free(buf);
        return 0;
    }
    memcpy(pattern, buf, cut);
    pattern[cut] = 0;

    struct error err;
    int valid = subject_pattern_check(pattern, &err);
    bool matched = subject_matches(pattern, subject);
    if (valid == 0 && matched != reference_match(pattern, subject))
        abort();
    if (matched &&
        (*subject == 0 || *subject == '.' || subject[strlen(subject) - 1] == '.' || strstr(subject, "..") != NULL))
        abort(); /* a subject with an empty token never matches */
    /* A valid pattern without wildcards matches itself. */
    if (valid == 0 && strpbrk(pattern, "*>") == NULL && !subject_matches(pattern, pattern))
        abort();
    subject_matches(subject, pattern);

    free(pattern);
    free(buf);
    return 0;
}
