/* test_text.c: unit tests for UTF-8 validation, Slack escaping with truncation, bounded copies, one-line
 * escaping, URL redaction, and logs cut to their caps keeping the newest lines (capture-logs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/text.h"

#define ELLIPSIS "\xe2\x80\xa6" /* "…" */

static void check_valid(const char *s, size_t len, bool expected)
{
    if (text_utf8_valid(s, len) != expected) {
        char hex[128];
        size_t n = 0;
        for (size_t i = 0; i < len && n + 4 < sizeof(hex); i++)
            n += (size_t)snprintf(hex + n, sizeof(hex) - n, "%02x ", (unsigned char)s[i]);
        fail_msg("text_utf8_valid(%s) should be %s", hex, expected ? "true" : "false");
    }
}

#define VALID(lit) check_valid(lit, sizeof(lit) - 1, true)
#define INVALID(lit) check_valid(lit, sizeof(lit) - 1, false)

static void test_utf8_valid(void **state)
{
    (void)state;
    check_valid("", 0, true);
    check_valid(NULL, 0, true);
    VALID("plain ASCII, with punctuation: <>&\"'\t\r\n\x01\x7f");
    VALID("\xc2\x80");         /* U+0080, the smallest 2-byte */
    VALID("caf\xc3\xa9");      /* é */
    VALID("\xdf\xbf");         /* U+07FF */
    VALID("\xe0\xa0\x80");     /* U+0800, the smallest 3-byte */
    VALID("\xe2\x82\xac");     /* € */
    VALID("\xed\x9f\xbf");     /* U+D7FF, just below the surrogates */
    VALID("\xee\x80\x80");     /* U+E000, just above them */
    VALID("\xef\xbf\xbf");     /* U+FFFF */
    VALID("\xf0\x90\x80\x80"); /* U+10000, the smallest 4-byte */
    VALID("\xf0\x9f\x98\x80"); /* 😀 */
    VALID("\xf4\x8f\xbf\xbf"); /* U+10FFFF, the largest */
    VALID("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
}

static void test_utf8_invalid(void **state)
{
    (void)state;
    INVALID("\xc0\xaf");                 /* overlong '/' */
    INVALID("\xc1\xbf");                 /* overlong U+007F */
    INVALID("\xc0\x80");                 /* overlong NUL (modified UTF-8) */
    INVALID("\xe0\x80\xaf");             /* overlong, 3 bytes */
    INVALID("\xe0\x9f\xbf");             /* overlong U+07FF */
    INVALID("\xf0\x80\x80\xaf");         /* overlong, 4 bytes */
    INVALID("\xf0\x8f\xbf\xbf");         /* overlong U+FFFF */
    INVALID("\xed\xa0\x80");             /* surrogate U+D800 */
    INVALID("\xed\xbf\xbf");             /* surrogate U+DFFF */
    INVALID("\xed\xa0\xbd\xed\xb8\x80"); /* a CESU-8 surrogate pair */
    INVALID("\xf4\x90\x80\x80");         /* U+110000 */
    INVALID("\xf7\xbf\xbf\xbf");         /* beyond Unicode */
    INVALID("\xf8\x88\x80\x80\x80");     /* 5-byte form */
    INVALID("\xfc\x84\x80\x80\x80\x80"); /* 6-byte form */
    INVALID("\xff");
    INVALID("\xfe");
    INVALID("a\xff"
            "b");
    INVALID("\x80"); /* stray continuation */
    INVALID("a\xbf");
    INVALID("\xc3");               /* truncated 2-byte */
    INVALID("\xe2\x82");           /* truncated 3-byte */
    INVALID("\xf0\x9f\x98");       /* truncated 4-byte */
    INVALID("\xe2\x82x");          /* a non-continuation inside */
    INVALID("\xc3\xa9\xa9");       /* one continuation too many */
    check_valid("a\0b", 3, false); /* NUL */
    check_valid("\0", 1, false);
    /* The length bounds the check: a sequence cut by it is invalid, what follows it is not looked at. */
    check_valid("\xc3\xa9", 1, false);
    check_valid("\xe2\x82\xac", 2, false);
    check_valid("ab\xff", 2, true);
}

/* Checks escape(in, max_in) (text_slack_escape or text_teams_escape) against expected. */
static void check_escape_with(char *(*escape)(const char *, size_t), const char *in, size_t max_in,
                              const char *expected)
{
    char *out = escape(in, max_in);
    assert_non_null(out);
    if (strcmp(out, expected) != 0)
        fail_msg("escape(\"%s\", %zu): expected \"%s\", got \"%s\"", in, max_in, expected, out);
    assert_true(text_utf8_valid(out, strlen(out)));
    free(out);
}

static void check_escape(const char *in, size_t max_in, const char *expected)
{
    check_escape_with(text_slack_escape, in, max_in, expected);
}

static void check_teams(const char *in, size_t max_in, const char *expected)
{
    check_escape_with(text_teams_escape, in, max_in, expected);
}

static void test_slack_escape(void **state)
{
    (void)state;
    check_escape("<!channel> & <https://x|y>", 1000, "&lt;!channel&gt; &amp; &lt;https://x|y&gt;");
    check_escape("<!here> <@U123> <#C1|general>", 1000, "&lt;!here&gt; &lt;@U123&gt; &lt;#C1|general&gt;");
    check_escape("a && b", 100, "a &amp;&amp; b");
    check_escape("&amp;", 100, "&amp;amp;"); /* escaping is not undone */
    check_escape("<<<>>>", 100, "&lt;&lt;&lt;&gt;&gt;&gt;");
    check_escape("plain text, \"quotes\" and 'apostrophes' *bold* _it_", 100,
                 "plain text, \"quotes\" and 'apostrophes' *bold* _it_");
    check_escape("", 100, "");
    check_escape("", 0, "");
    check_escape("caf\xc3\xa9 <\xe2\x82\xac>", 100, "caf\xc3\xa9 &lt;\xe2\x82\xac&gt;");
}

static void test_slack_escape_truncation(void **state)
{
    (void)state;
    check_escape("abcdef", 6, "abcdef"); /* exactly max_in: no cut */
    check_escape("abcdef", 7, "abcdef");
    check_escape("abcdef", 3, "abc" ELLIPSIS);
    check_escape("abcdef", 0, ELLIPSIS);
    /* The cut counts input bytes; escaping happens after it. */
    check_escape("&&&&", 2, "&amp;&amp;" ELLIPSIS);
    check_escape("<b>", 1, "&lt;" ELLIPSIS);
    /* Never inside a character. */
    check_escape("a\xc3\xa9", 2, "a" ELLIPSIS);
    check_escape("a\xc3\xa9", 3, "a\xc3\xa9");
    check_escape("\xe2\x82\xac\xe2\x82\xac", 4, "\xe2\x82\xac" ELLIPSIS);
    check_escape("\xe2\x82\xac\xe2\x82\xac", 5, "\xe2\x82\xac" ELLIPSIS);
    check_escape("\xe2\x82\xac\xe2\x82\xac", 6, "\xe2\x82\xac\xe2\x82\xac");
    check_escape("\xe2\x82\xac", 2, ELLIPSIS);
    check_escape("\xf0\x9f\x98\x80x", 3, ELLIPSIS);
    check_escape("\xf0\x9f\x98\x80x", 4, "\xf0\x9f\x98\x80" ELLIPSIS);
    check_escape("x\xf0\x9f\x98\x80", 4, "x" ELLIPSIS);

    /* Every cut of a long mixed string ends on a character boundary. */
    const char *mixed = "a<\xc3\xa9>&\xe2\x82\xac\xf0\x9f\x98\x80z";
    for (size_t max = 0; max <= strlen(mixed) + 1; max++) {
        char *out = text_slack_escape(mixed, max);
        assert_non_null(out);
        if (!text_utf8_valid(out, strlen(out)))
            fail_msg("cut at %zu split a character: %s", max, out);
        free(out);
    }

    /* A large input: the output is bounded by max_in, escaped, plus the mark. */
    size_t n = 100000;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, '<', n);
    big[n] = 0;
    char *out = text_slack_escape(big, 3000);
    assert_non_null(out);
    assert_int_equal(strlen(out), 3000 * 4 + strlen(ELLIPSIS));
    free(out);
    free(big);
}

static void check_copy(size_t size, const char *src, const char *expected)
{
    char buf[64];
    memset(buf, 'Z', sizeof(buf));
    assert_true(size <= sizeof(buf));
    char *r = text_copy(buf, size, src);
    assert_ptr_equal(r, buf);
    if (strcmp(buf, expected) != 0)
        fail_msg("text_copy(%zu, \"%s\"): expected \"%s\", got \"%s\"", size, src, expected, buf);
    for (size_t i = size; i < sizeof(buf); i++)
        if (buf[i] != 'Z')
            fail_msg("text_copy(%zu, \"%s\") wrote byte %zu", size, src, i);
}

static void test_text_copy(void **state)
{
    (void)state;
    check_copy(1, "abc", "");
    check_copy(2, "abc", "a");
    check_copy(3, "abc", "ab");
    check_copy(4, "abc", "abc");
    check_copy(10, "abc", "abc");
    check_copy(10, "", "");
    check_copy(1, "", "");
    /* "héllo": é is 2 bytes */
    check_copy(2, "h\xc3\xa9llo", "h");
    check_copy(3, "h\xc3\xa9llo", "h");
    check_copy(4, "h\xc3\xa9llo", "h\xc3\xa9");
    check_copy(2, "\xe2\x82\xac", "");
    check_copy(3, "\xe2\x82\xac", "");
    check_copy(4, "\xe2\x82\xac", "\xe2\x82\xac");
    check_copy(4, "\xf0\x9f\x98\x80", "");
    check_copy(5, "\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80");
    check_copy(5, "ab\xf0\x9f\x98\x80", "ab");
    check_copy(7, "ab\xf0\x9f\x98\x80", "ab\xf0\x9f\x98\x80");
}

/* Checks text_escape over the whole of src, and that its output is valid UTF-8 with no control left. */
static void check_line_escape(const char *src, const char *expected)
{
    char buf[256];
    text_escape(buf, sizeof(buf), src);
    if (strcmp(buf, expected) != 0)
        fail_msg("text_escape(\"%s\"): expected \"%s\", got \"%s\"", src, expected, buf);
    assert_true(text_utf8_valid(buf, strlen(buf)));
    for (const unsigned char *p = (const unsigned char *)buf; *p; p++)
        assert_true(*p >= 0x20 && *p != 0x7f);
}

static void test_escape(void **state)
{
    (void)state;
    check_line_escape("", "");
    check_line_escape("plain caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                      "plain caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    check_line_escape("q\" b\\ n\n t\t r\r e\x1b d\x7f", "q\\\" b\\\\ n\\n t\\t r\\u000d e\\u001b d\\u007f");
    /* C1 controls, U+0080..U+009F (NEL is U+0085); U+00A0 is not one */
    check_line_escape("\xc2\x80|\xc2\x85|\xc2\x9f|\xc2\xa0", "\\u0080|\\u0085|\\u009f|\xc2\xa0");
    /* line and paragraph separators */
    check_line_escape("a\xe2\x80\xa8z\xe2\x80\xa9", "a\\u2028z\\u2029");
    /* bidi embeddings and overrides U+202A..U+202E, isolates U+2066..U+2069; U+2065 and U+2070 pass */
    check_line_escape("\xe2\x80\xaa\xe2\x80\xab\xe2\x80\xac\xe2\x80\xad\xe2\x80\xae",
                      "\\u202a\\u202b\\u202c\\u202d\\u202e");
    check_line_escape("\xe2\x81\xa6\xe2\x81\xa7\xe2\x81\xa8\xe2\x81\xa9", "\\u2066\\u2067\\u2068\\u2069");
    check_line_escape("\xe2\x81\xa5\xe2\x81\xb0", "\xe2\x81\xa5\xe2\x81\xb0");
    /* invalid bytes: each becomes \ufffd, and what follows is read again from the next byte */
    check_line_escape("subj\xff.x", "subj\\ufffd.x");
    check_line_escape("\xc0\xaf", "\\ufffd\\ufffd");                       /* overlong '/' */
    check_line_escape("\xe0\x80\x8a", "\\ufffd\\ufffd\\ufffd");            /* overlong newline */
    check_line_escape("\xc2\x8a", "\\u008a");                              /* but a real U+008A is a C1 control */
    check_line_escape("\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd");            /* a surrogate, U+D800 */
    check_line_escape("\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd"); /* beyond U+10FFFF */
    check_line_escape("cut \xe2\x82", "cut \\ufffd\\ufffd");               /* a sequence cut short by the end */
    check_line_escape("\xe2\x82\n", "\\ufffd\\ufffd\\n");
    check_line_escape("\x80\xbf", "\\ufffd\\ufffd"); /* stray continuation bytes */
}

static void test_escape_line_keeps_quotes(void **state)
{
    (void)state;
    char buf[64];
    assert_string_equal(text_escape_line(buf, sizeof(buf), "NetworkPolicy \"x\"\n\\"), "NetworkPolicy \"x\"\\n\\\\");
}

static void test_escape_bounded(void **state)
{
    (void)state;
    char buf[8];
    text_escape(buf, sizeof(buf), "abc\ndef"); /* "abc\n" is 5 bytes, "d" 1, "e" 1: 7 and the NUL */
    assert_string_equal(buf, "abc\\nde");
    text_escape(buf, 5, "abc\ndef"); /* never half an escape */
    assert_string_equal(buf, "abc");
    text_escape(buf, 1, "abc");
    assert_string_equal(buf, "");
    text_escape(buf, 4, "\xc3\xa9\xc3\xa9"); /* never half a character */
    assert_string_equal(buf, "\xc3\xa9");
}

static void check_redact(const char *url, const char *expected)
{
    char buf[256];
    assert_ptr_equal(text_redact_url(url, buf, sizeof(buf)), buf);
    if (strcmp(buf, expected) != 0)
        fail_msg("text_redact_url(\"%s\"): expected \"%s\", got \"%s\"", url, expected, buf);
}

static void test_redact_url(void **state)
{
    (void)state;
    check_redact("nats://127.0.0.1:4222", "nats://127.0.0.1:4222");
    check_redact("nats://user:secret@127.0.0.1:4222", "nats://***@127.0.0.1:4222");
    check_redact("nats://tok@host:4222", "nats://***@host:4222");
    check_redact("tls://u:p@[::1]:4222", "tls://***@[::1]:4222");
    /* the password holds '/', '?', '#' and '@': userinfo ends at the last '@' */
    check_redact("nats://u:p/a?b#c@d@host:4222", "nats://***@host:4222");
    check_redact("nats://u:p@ss/w?o#rd@host", "nats://***@host");
    check_redact("nats://u:a://b@host:4222", "nats://***@host:4222");
    /* no scheme (cnats adds nats://), or something that only looks like one inside the password */
    check_redact("u:pass@host:4222", "***@host:4222");
    check_redact("u:a://b@host:4222", "***@host:4222");
    check_redact("host:4222", "host:4222");
    /* a small buffer cuts the result, never shows the password */
    char small[12];
    text_redact_url("nats://u:secret@host", small, sizeof(small));
    assert_null(strstr(small, "secret"));
}

static void test_utf8_trim(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"", ""},
        {"abc", "abc"},
        {"a\xc3\xa9", "a\xc3\xa9"},
        {"a\xc3", "a"},
        {"a\xe2\x80", "a"},
        {"a\xe2\x80\xa6", "a\xe2\x80\xa6"},
        {"a\xf0\x9f\x99", "a"},
        {"\xf0\x9f\x99\x82", "\xf0\x9f\x99\x82"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[16];
        strcpy(buf, cases[i].in);
        text_utf8_trim(buf);
        assert_string_equal(buf, cases[i].out);
    }
}

static void test_teams_escape(void **state)
{
    (void)state;
    check_teams("plain text 10.0.0.1", 100, "plain text 10.0.0.1");
    check_teams("<at>x</at>", 100, "\\<at\\>x\\</at\\>");
    check_teams("[a](http://e)", 100, "\\[a\\]\\(http://e\\)");
    check_teams("**b** _i_ `c` ~~s~~ # h &amp;", 100, "\\*\\*b\\*\\* \\_i\\_ \\`c\\` \\~\\~s\\~\\~ \\# h \\&amp;");
    check_teams("- item", 100, "\\- item");
    check_teams("+ item", 100, "\\+ item");
    check_teams("a - b + c", 100, "a - b + c"); /* list markers count at the start only */
    check_teams("12. item", 100, "12\\. item");
    check_teams("  - item", 100, "  \\- item"); /* a list item may be indented (found by fuzz_text) */
    check_teams(" +nats", 100, " \\+nats");
    check_teams("   1. item", 100, "   1\\. item");
    check_teams(" 1 2. x", 100, " 1 2. x");
    check_teams("v1.2", 100, "v1.2");
    check_teams("back\\slash \"q\"", 100, "back\\\\slash \"q\"");
    check_teams("a\nb\tc\r", 100, "a\\\\nb\\\\tc\\\\u000d");
    check_teams("x\xe2\x80\xaey", 100, "x\\\\u202ey"); /* U+202E RIGHT-TO-LEFT OVERRIDE */
    check_teams("\xc3\xa9t\xc3\xa9", 100, "\xc3\xa9t\xc3\xa9");
    check_teams("", 100, "");
    check_teams("abcdef", 3, "abc\xe2\x80\xa6");
    check_teams("a\xc3\xa9", 2, "a\xe2\x80\xa6"); /* cut on a character boundary */
    check_teams("***", 2, "\\*\\*\xe2\x80\xa6");
}

/* text_log_tail with these caps (stored and wire room above the markers' room) gives exactly want. */
static void check_log_tail(const char *raw, size_t raw_len, size_t room, size_t wire_room, size_t read_limit,
                           const char *want)
{
    struct text_log_caps caps = {.stored_max = TEXT_LOG_MARKER_MAX + room,
                                 .wire_max = 2 * TEXT_LOG_MARKER_MAX + wire_room,
                                 .cap_kib = 512,
                                 .read_limit = read_limit};
    size_t len;
    char *out = text_log_tail(raw, raw_len, &caps, &len);
    assert_non_null(out);
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));
    free(out);
}

#define DROPPED(n) "[playbookd: " #n " bytes of older lines dropped: the logs are capped at 512 KiB]\n"
#define STOPPED(n) "[playbookd: the read stopped at limitBytes=" #n ": later lines not read]\n"

static void test_log_tail(void **state)
{
    (void)state;
    const char *lines = "line 0\nline 1\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7\nline 8\nline 9\n";
    check_log_tail(lines, 70, 70, 1000, 1000, lines); /* fits: as it is, no marker */
    check_log_tail(lines, 70, 69, 1000, 1000,
                   DROPPED(7) "line 1\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7\n"
                              "line 8\nline 9\n");
    /* The newest 20 bytes start inside "line 7": kept from the next line start. */
    check_log_tail(lines, 70, 20, 1000, 1000, DROPPED(56) "line 8\nline 9\n");
    /* As JSON text a newline is two bytes, \x01 six: the wire cap cuts too. */
    check_log_tail("ab\nab\nab\nab\nab\n", 15, 1000, 14, 1000, DROPPED(6) "ab\nab\nab\n");
    check_log_tail("\x01\x01\x01\x01\n", 5, 1000, 13, 1000, DROPPED(3) "\x01\n");
    /* One line longer than the cap: cut on a character boundary, never inside "é". */
    check_log_tail("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 10, 5, 1000, 1000, DROPPED(6) "\xc3\xa9\xc3\xa9");
    check_log_tail("abc", 3, 0, 1000, 1000, DROPPED(3) "");
    /* Invalid bytes and NUL become U+FFFD (its bytes count in the caps). */
    check_log_tail("a\xff\0b\n", 5, 1000, 1000, 1000,
                   "a\xef\xbf\xbd\xef\xbf\xbd"
                   "b\n");
    check_log_tail("ok\n\xff\xff", 5, 6, 1000, 1000, DROPPED(3) "\xef\xbf\xbd\xef\xbf\xbd");
    /* A read that reached limitBytes says so on a line of its own. */
    check_log_tail("a\nb", 3, 1000, 1000, 3, "a\nb\n" STOPPED(3));
    check_log_tail("a\nb\n", 4, 1000, 1000, 4, "a\nb\n" STOPPED(4));
    check_log_tail("a\nb\n", 4, 1000, 1000, 5, "a\nb\n");
    check_log_tail("a\nbc", 4, 2, 1000, 4, DROPPED(2) "bc\n" STOPPED(4));
    check_log_tail("", 0, 1000, 1000, 1000, "");
}

static void test_fit_prefix(void **state)
{
    (void)state;
    assert_int_equal(text_fit_prefix("abc", 3, 10, 10), 3);
    assert_int_equal(text_fit_prefix("abc", 3, 2, 10), 2);
    assert_int_equal(text_fit_prefix("a\xc3\xa9", 3, 2, 10), 1); /* not inside "é" */
    assert_int_equal(text_fit_prefix("a\n\"b", 4, 10, 4), 2);    /* \n and \" are two bytes as JSON */
    assert_int_equal(text_fit_prefix("\x01z", 2, 10, 5), 0);     /* \u0001 is six */
    assert_int_equal(text_json_size("a\"\\\b\f\n\r\t\x01\x1f\x7f\xc3\xa9", 13), 1 + 7 * 2 + 2 * 6 + 1 + 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_valid),     cmocka_unit_test(test_utf8_invalid),
        cmocka_unit_test(test_slack_escape),   cmocka_unit_test(test_slack_escape_truncation),
        cmocka_unit_test(test_text_copy),      cmocka_unit_test(test_escape),
        cmocka_unit_test(test_escape_bounded), cmocka_unit_test(test_escape_line_keeps_quotes),
        cmocka_unit_test(test_redact_url),     cmocka_unit_test(test_teams_escape),
        cmocka_unit_test(test_utf8_trim),      cmocka_unit_test(test_log_tail),
        cmocka_unit_test(test_fit_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
