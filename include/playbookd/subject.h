/* subject.h: NATS subjects for alerts (falco.<priority>.<slug>) and NATS wildcard pattern matching. */
#ifndef PLAYBOOKD_SUBJECT_H
#define PLAYBOOKD_SUBJECT_H

#include <stdbool.h>
#include <stddef.h>

#include "playbookd/alert.h"
#include "playbookd/error.h"

#define SUBJECT_MAX (ALERT_MAX_RULE + 32)

/*
 * The rule's slug: lowercased, each run of characters outside [a-z0-9] replaced by one '_', leading and
 * trailing '_' removed. Returns its length, or -1 if it is empty or does not fit in size.
 */
int subject_slug(const char *rule, char *out, size_t size);

/* falco.<priority>.<slug> for the alert; returns its length or -1 (rule without a slug). */
int subject_for_alert(const struct alert *a, char *out, size_t size);

/*
 * Subject templates, as falcosidekick's `subjecttemplate`: literal text with the tokens <priority> (the
 * priority lowercased) and <rule> (the rule's slug). The default gives what subject_for_alert gives.
 */
#define SUBJECT_TEMPLATE_DEFAULT "falco.<priority>.<rule>"
/* Checks a template: only those two tokens, and whatever they stand for, a valid subject (no wildcard,
 * whitespace or empty token). */
int subject_template_check(const char *tmpl, struct error *err);
/* The template for the alert; returns its length, or -1 (<rule> without a slug, or longer than size). */
int subject_from_template(const char *tmpl, const struct alert *a, char *out, size_t size);

/* Checks a subscription pattern: non-empty dot-separated tokens, '*' a whole token, '>' only last. */
int subject_pattern_check(const char *pattern, struct error *err);

/* NATS semantics: '*' matches one token, '>' one or more trailing tokens. Malformed subjects never match. */
bool subject_matches(const char *pattern, const char *subject);

#endif
