/* text.h: small text helpers for untrusted input: UTF-8 validation, Slack escaping, bounded copies, logs cut
 * to a size as JSON text. */
#ifndef PLAYBOOKD_TEXT_H
#define PLAYBOOKD_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "playbookd/error.h"

/* True if data[0..len) is well-formed UTF-8 (no overlongs, surrogates or NUL bytes). */
bool text_utf8_valid(const char *data, size_t len);

/*
 * A copy of data[0..len) that is well-formed UTF-8: every byte that text_utf8_valid would refuse (NUL, a
 * stray or missing continuation byte, an overlong form, a surrogate) becomes U+FFFD. Malloc'd and
 * NUL-terminated, its length in *out_len and the bytes replaced in *replaced; NULL when out of memory.
 */
char *text_utf8_sanitize(const char *data, size_t len, size_t *out_len, size_t *replaced);

/* Bytes of s[0..n) as the text of a JSON string (cJSON's escaping: '"', '\\' and \b \f \n \r \t are two, other
 * C0 controls six, every other byte one): what it weighs in a request. */
size_t text_json_size(const char *s, size_t n);

/* The length of the longest prefix of text[0..n) (valid UTF-8) of at most stored_max bytes and wire_max
 * bytes as JSON text (text_json_size), ending on a character boundary. */
size_t text_fit_prefix(const char *text, size_t n, size_t stored_max, size_t wire_max);

/* Room that text_log_tail keeps in stored_max for its marker lines (twice that in wire_max): both together
 * are at most this long, whatever the numbers they show. */
#define TEXT_LOG_MARKER_MAX 200

/* The budget of one log and the numbers its markers show. */
struct text_log_caps {
    size_t stored_max; /* bytes of the result, markers included (when at least TEXT_LOG_MARKER_MAX) */
    size_t wire_max;   /* the same as JSON text (when at least 2 * TEXT_LOG_MARKER_MAX) */
    size_t cap_kib;    /* the cap the first marker names */
    size_t read_limit; /* a raw_len at or over it was cut by the read (limitBytes): the second marker says so */
};

/*
 * A log read from the kubelet (raw, attacker-written bytes) as evidence: text_utf8_sanitize'd and, when it is
 * over the caps (less the room for the markers), only its newest part, from the first line start within that
 * part (else from a character boundary), after the line
 * "[playbookd: N bytes of older lines dropped: the logs are capped at K KiB]\n" (N: bytes of the sanitized
 * text). A raw_len at or over read_limit ends it with the line
 * "[playbookd: the read stopped at limitBytes=L: later lines not read]\n". Malloc'd and NUL-terminated, its
 * length in *len; NULL when out of memory.
 */
char *text_log_tail(const char *raw, size_t raw_len, const struct text_log_caps *caps, size_t *len);

/*
 * Escapes `&`, `<`, `>` as Slack requires, so text cannot mention <!channel> or forge a link. At most
 * max_in bytes of the input are used, cut on a character boundary, with "…" appended when cut.
 * Returns a malloc'd string, or NULL when out of memory.
 */
char *text_slack_escape(const char *in, size_t max_in);

/*
 * Escapes text for Microsoft Teams' markdown (Adaptive Card TextBlock and Fact values, a CommonMark subset):
 * a backslash before every character it could read as syntax (`\\`, `*`, `_`, `[`, `]`, `(`, `)`, `<`, `>`,
 * `#`, `` ` ``, `~`, `&`; `-` and `+` after nothing but spaces, `.` after spaces and digits: a list marker), and
 * controls, line breaks, bidi overrides and invalid bytes shown as text_escape_char writes them (\n, \u202e), their
 * backslash escaped: one line that cannot mention, link or format. At most max_in bytes of the input, cut on a
 * character boundary, "…" appended when cut. Returns a malloc'd string, or NULL when out of memory.
 */
char *text_teams_escape(const char *in, size_t max_in);

/*
 * One character of s, escaped for a single line of a log or a result (JSON string rules, used for text too):
 * '"' and the backslash get a backslash, newline and tab become \n and \t; other C0 controls, DEL, C1 controls
 * (U+0080-U+009F), U+2028, U+2029 and the bidi overrides and isolates (U+202A-U+202E, U+2066-U+2069) become
 * \u00XX / \u20XX; every byte that is not part of well-formed UTF-8 (overlong forms and surrogates
 * included) becomes the six characters \ufffd. Writes the NUL-terminated result into out and returns the
 * bytes of s it used (0 at the end of s). The output is always valid UTF-8 without controls.
 */
#define TEXT_ESCAPE_MAX 8
/* The length of the run of bytes at s that text_escape_char leaves as they are without decoding them:
 * printable ASCII but '"' and the backslash. The escapers copy such runs whole. */
size_t text_plain_run(const char *s);
size_t text_escape_char(const char *s, char out[TEXT_ESCAPE_MAX]);
/* src escaped as text_escape_char does, into dst (size > 0), cut between two escapes; returns dst. For text
 * shown between quotes. */
char *text_escape(char *dst, size_t size, const char *src);
/* The same, but '"' is kept as it is: for a line of output that is not a quoted string (a replay result). */
char *text_escape_line(char *dst, size_t size, const char *src);

/* Drops an incomplete UTF-8 sequence at the end of s, as snprintf leaves when it cuts: for a text that was
 * valid UTF-8 before the cut. */
void text_utf8_trim(char *s);

/* Copies src into dst (size > 0), truncated on a UTF-8 character boundary; returns dst. */
char *text_copy(char *dst, size_t size, const char *src);

/* Decodes standard base64 (whitespace ignored); malloc'd, NUL-terminated, length in *len. NULL if invalid. */
char *text_base64_decode(const char *in, size_t *len);

/*
 * The URL with its userinfo (user:password@) replaced by ***@, for logs; returns buf. The userinfo ends at
 * the last '@' after the scheme, whatever the password holds ('/', '?', '#', '@'): in doubt, more is hidden.
 */
char *text_redact_url(const char *url, char *buf, size_t size);

/* Reads a whole file of at most max bytes; malloc'd and NUL-terminated, or NULL with the reason in err. */
char *text_read_file(const char *path, size_t max, size_t *len, struct error *err);

#endif
