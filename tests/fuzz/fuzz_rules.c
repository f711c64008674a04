/*
 * fuzz_rules.c: libFuzzer target for rule_match: the rules of a fixed config (every criterion: subjects,
 * priority comparisons, Falco rule names, tags, source, output_fields globs and their negation) against an
 * alert from the fuzzer. Checks: with or without an explanation the verdict is the same; a miss explains
 * itself in valid UTF-8 without control characters, within the buffer, at any buffer size; and
 * rule_glob_match, with each output_fields key of the alert as a glob and its value as the text, agrees
 * with a reference matcher (dynamic programming over tokens and characters).
 */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/alert.h"
#include "playbookd/config.h"
#include "playbookd/rules.h"
#include "playbookd/subject.h"
#include "playbookd/text.h"

static const char config_yaml[] = "playbooks:\n"
                                  "  kill: {type: delete-pod}\n"
                                  "topics:\n"
                                  "  falco.*.terminal_shell_in_container: [kill]\n"
                                  "rules:\n"
                                  "  - name: shells in prod\n"
                                  "    match:\n"
                                  "      subjects: [\"falco.*.terminal_shell_in_container\", \"falco.critical.>\"]\n"
                                  "      priority: \">=Warning\"\n"
                                  "      rules: [Terminal shell in container, \"Read sensitive file untrusted\"]\n"
                                  "      tags: [[container, mitre_execution], [k8s], [\"\\u00e9t\\u00e9\"]]\n"
                                  "      source: syscall\n"
                                  "      output_fields:\n"
                                  "        k8s.ns.name: \"prod-*\"\n"
                                  "        container.image.repository!=: registry.local/debug\n"
                                  "        proc.tty: \"3?8*\"\n"
                                  "    playbooks: [kill]\n"
                                  "  - name: not debug\n"
                                  "    match: {priority: \"!=Debug\", output_fields: {proc.cmdline: \"*\\\\**\", "
                                  "evt.time!=: \"1*\", \"user.name\": \"r??t\"}}\n"
                                  "    playbooks: [kill]\n"
                                  "  - name: below\n"
                                  "    match: {priority: \"<Notice\", source: k8s_audit, tags: [[a, b, c, d]]}\n"
                                  "    playbooks: [kill]\n"
                                  "  - {name: any, playbooks: kill, continue: false}\n";

static struct config *cfg;

/* One glob token at g: '*' (2), '?' (1) or a literal byte (0), its length in *len. */
static int token(const char *g, size_t *len, char *lit)
{
    *len = *g == '\\' ? 2 : 1;
    *lit = g[*len - 1];
    return *g == '*' ? 2 : *g == '?' ? 1 : 0;
}

/* The length of the character at s, as rule_glob_match counts it: a byte and its continuation bytes. */
static size_t char_len(const char *s)
{
    size_t n = 1;
    while (((unsigned char)s[n] & 0xc0) == 0x80)
        n++;
    return n;
}

#define REF_MAX 128
/* match[i][j]: the glob from token i matches the text from byte j; tokens and text bounded by REF_MAX. */
static bool reference_glob(const char *glob, const char *text)
{
    static bool match[REF_MAX + 1][REF_MAX + 1];
    const char *tok[REF_MAX + 1];
    size_t nt = 0, n = strlen(text);
    for (const char *g = glob; *g; nt++) {
        size_t len;
        char lit;
        tok[nt] = g;
        token(g, &len, &lit);
        g += len;
    }
    for (size_t i = nt + 1; i-- > 0;) {
        for (size_t j = n + 1; j-- > 0;) {
            size_t len, step = j < n ? char_len(text + j) : 0;
            char lit;
            if (i == nt) {
                match[i][j] = j == n;
                continue;
            }
            int kind = token(tok[i], &len, &lit);
            if (kind == 2)
                match[i][j] = match[i + 1][j] || (j < n && j + step <= n && match[i][j + step]);
            else if (kind == 1)
                match[i][j] = j < n && j + step <= n && match[i + 1][j + step];
            else
                match[i][j] = j < n && text[j] == lit && match[i + 1][j + 1];
        }
    }
    return match[0][0];
}

static void check_globs(const struct alert *a)
{
    if (a->fields == NULL)
        return;
    for (const cJSON *f = a->fields->child; f != NULL; f = f->next) {
        char buf[64];
        const char *v = alert_field(a, f->string, buf, sizeof(buf));
        if (v == NULL || f->string == NULL || strlen(f->string) > REF_MAX || strlen(v) > REF_MAX ||
            rule_glob_check(f->string, NULL) != 0)
            continue;
        if (rule_glob_match(f->string, v) != reference_glob(f->string, v))
            abort();
    }
}

/* Valid UTF-8 without control characters (log lines and --explain show it as it is). */
static void check_why(const char *why, size_t size)
{
    size_t n = strnlen(why, size);
    if (n == size || !text_utf8_valid(why, n))
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)why[i] < 0x20 || why[i] == 0x7f)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct error err;
    if (cfg == NULL && config_load_string(&cfg, "fuzz.yaml", config_yaml, strlen(config_yaml), false, &err) != 0)
        abort(); /* the fixed config is valid */
    struct alert a;
    if (alert_parse(&a, (const char *)data, size, &err) != 0)
        return 0;
    char subject[SUBJECT_MAX];
    if (subject_for_alert(&a, subject, sizeof(subject)) < 0)
        strcpy(subject, "falco.notice.x");
    for (size_t i = 0; i < cfg->n_rules; i++) {
        const struct rule *r = &cfg->rules[i];
        char why[RULE_WHY_MAX];
        memset(why, 'x', sizeof(why));
        bool hit = rule_match(r, &a, subject, NULL, 0);
        if (rule_match(r, &a, subject, why, sizeof(why)) != hit)
            abort();
        if (hit)
            continue;
        check_why(why, sizeof(why));
        if (why[0] == 0)
            abort(); /* a miss says why */
        for (size_t cut = 1; cut < 48; cut += 7) {
            char small[48];
            if (rule_match(r, &a, subject, small, cut))
                abort();
            check_why(small, cut);
        }
    }
    check_globs(&a);
    alert_free(&a);
    return 0;
}
