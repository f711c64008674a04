/* text.h: small text helpers for untrusted input: UTF-8 validation, Slack escaping, bounded copies. */
#ifndef PLAYBOOKD_TEXT_H
#define PLAYBOOKD_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "playbookd/error.h"

/* True if data[0..len) is well-formed UTF-8 (no overlongs, surrogates or NUL bytes). */
bool text_utf8_valid(const char *data, size_t len);

/*
 * Escapes `&`, `<`, `>` as Slack requires, so text cannot mention <!channel> or forge a link. At most
 * max_in bytes of the input are used, cut on a character boundary, with "…" appended when cut.
 * Returns a malloc'd string, or NULL when out of memory.
 */
char *text_slack_escape(const char *in, size_t max_in);

/* Copies src into dst (size > 0), truncated on a UTF-8 character boundary; returns dst. */
char *text_copy(char *dst, size_t size, const char *src);

/* Decodes standard base64 (whitespace ignored); malloc'd, NUL-terminated, length in *len. NULL if invalid. */
char *text_base64_decode(const char *in, size_t *len);

/* The URL with any user:password@ replaced by ***@, for logs; returns buf. */
char *text_redact_url(const char *url, char *buf, size_t size);

/* Reads a whole file of at most max bytes; malloc'd and NUL-terminated, or NULL with the reason in err. */
char *text_read_file(const char *path, size_t max, size_t *len, struct error *err);

#endif
