/* test_log.c: unit tests for log_kv: text and JSON lines, quoting, escaping, skipped NULLs, caps, one line per call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/log.h"
#include "playbookd/text.h"

#define TS_LEN 24 /* "2024-05-01T12:34:56.789Z" */

static char *mem_buf;
static size_t mem_len;
static FILE *mem;

/* Sends the log to memory in the given format. */
static void capture(const char *format)
{
    mem_buf = NULL;
    mem_len = 0;
    mem = open_memstream(&mem_buf, &mem_len);
    assert_non_null(mem);
    log_set_stream(mem);
    assert_int_equal(log_set_format(format), 0);
}

/* Everything logged since capture(); malloc'd. */
static char *captured(void)
{
    log_set_stream(NULL);
    fclose(mem);
    mem = NULL;
    return mem_buf;
}

static int restore(void **state)
{
    (void)state;
    log_set_stream(NULL);
    log_set_format("text");
    log_set_level(LOG_INFO);
    if (mem != NULL) {
        fclose(mem);
        free(mem_buf);
        mem = NULL;
    }
    return 0;
}

static size_t count_char(const char *s, char c)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

static void check_timestamp(const char *ts)
{
    /* YYYY-MM-DDTHH:MM:SS.mmmZ */
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t i = 0; i < TS_LEN; i++) {
        char want = shape[i];
        if (want == 'd' ? (ts[i] < '0' || ts[i] > '9') : ts[i] != want)
            fail_msg("bad timestamp: %.*s", TS_LEN, ts);
    }
}

/* Checks one text line: a timestamp, then exactly `rest` (which starts with " level msg"). */
static void check_text_line(const char *out, const char *rest)
{
    assert_non_null(out);
    assert_int_equal(count_char(out, '\n'), 1);
    assert_true(strlen(out) > TS_LEN);
    check_timestamp(out);
    if (strcmp(out + TS_LEN, rest) != 0)
        fail_msg("expected line \"<ts>%s\"\n          got \"%s\"", rest, out);
}

static void test_text_basic(void **state)
{
    (void)state;
    capture("text");
    log_kv(LOG_INFO, "ready", "subscriptions", "3", NULL);
    char *out = captured();
    check_text_line(out, " info ready subscriptions=3\n");
    free(out);

    capture("text");
    log_kv(LOG_WARN, "action", "subject", "falco.notice.x", "outcome", "ok", NULL);
    out = captured();
    check_text_line(out, " warn action subject=falco.notice.x outcome=ok\n");
    free(out);

    capture("text");
    log_kv(LOG_ERROR, "stopped", NULL);
    out = captured();
    check_text_line(out, " error stopped\n");
    free(out);
}

static void test_text_quoting(void **state)
{
    (void)state;
    static const struct {
        const char *value, *shown;
    } cases[] = {
        {"a b", "\"a b\""},
        {"say \"hi\"", "\"say \\\"hi\\\"\""},
        {"a=b", "\"a=b\""},
        {"", "\"\""},
        {"back\\slash", "\"back\\\\slash\""},
        {"a\nb", "\"a\\nb\""},
        {"tab\there", "\"tab\\there\""},
        {"cr\r", "\"cr\\u000d\""},
        {"bell\x07", "\"bell\\u0007\""},
        {"del\x7f", "\"del\\u007f\""},
        {"esc\x1b[31m", "\"esc\\u001b[31m\""},
        {"caf\xc3\xa9", "caf\xc3\xa9"},
        {"plain-value_1.2:3/4", "plain-value_1.2:3/4"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char expected[128];
        snprintf(expected, sizeof(expected), " info m k=%s\n", cases[i].shown);
        capture("text");
        log_kv(LOG_INFO, "m", "k", cases[i].value, NULL);
        char *out = captured();
        check_text_line(out, expected);
        free(out);
    }
}

static void test_text_no_forged_lines(void **state)
{
    (void)state;
    capture("text");
    log_kv(LOG_INFO, "rejected", "reason", "x\n2024-01-01T00:00:00.000Z error forged admin=yes\n", "origin", "nats\r\n",
           NULL);
    log_kv(LOG_INFO, "line\ntwo", NULL);
    char *out = captured();
    assert_int_equal(count_char(out, '\n'), 2);
    assert_non_null(strstr(out, " info rejected reason=\"x\\n2024-01-01T00:00:00.000Z error forged admin=yes\\n\" "
                                "origin=\"nats\\u000d\\n\"\n"));
    assert_non_null(strstr(out, " info line\\ntwo\n"));
    free(out);
}

static void test_null_values_skipped(void **state)
{
    (void)state;
    capture("text");
    log_kv(LOG_INFO, "m", "a", (const char *)NULL, "b", "2", "c", (const char *)NULL, NULL);
    char *out = captured();
    check_text_line(out, " info m b=2\n");
    free(out);

    capture("json");
    log_kv(LOG_INFO, "m", "a", (const char *)NULL, "b", "2", NULL);
    out = captured();
    cJSON *j = cJSON_Parse(out);
    assert_non_null(j);
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "a"));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "b")->valuestring, "2");
    cJSON_Delete(j);
    free(out);
}

static void test_levels(void **state)
{
    (void)state;
    capture("text");
    log_kv(LOG_DEBUG, "hidden", NULL); /* below the default level, info */
    log_kv(LOG_INFO, "shown", NULL);
    log_set_level(LOG_WARN);
    log_kv(LOG_INFO, "hidden", NULL);
    log_kv(LOG_WARN, "shown", NULL);
    log_set_level(LOG_DEBUG);
    log_kv(LOG_DEBUG, "shown", NULL);
    char *out = captured();
    assert_null(strstr(out, "hidden"));
    assert_int_equal(count_char(out, '\n'), 3);
    assert_non_null(strstr(out, " info shown\n"));
    assert_non_null(strstr(out, " warn shown\n"));
    assert_non_null(strstr(out, " debug shown\n"));
    free(out);
}

static void test_set_format(void **state)
{
    (void)state;
    assert_int_equal(log_set_format("json"), 0);
    assert_int_equal(log_set_format("xml"), -1);
    assert_int_equal(log_set_format("JSON"), -1);
    assert_int_equal(log_set_format(""), -1);
    /* A refused name leaves the format as it was: still JSON. */
    mem_buf = NULL;
    mem = open_memstream(&mem_buf, &mem_len);
    assert_non_null(mem);
    log_set_stream(mem);
    log_kv(LOG_INFO, "m", NULL);
    char *out = captured();
    assert_true(out[0] == '{');
    free(out);
}

/* Parses the single JSON line out, checks ts/level/msg, and returns the object. */
static cJSON *parse_json_line(const char *out, const char *level, const char *msg)
{
    assert_non_null(out);
    assert_int_equal(count_char(out, '\n'), 1);
    assert_true(out[strlen(out) - 1] == '\n');
    assert_true(text_utf8_valid(out, strlen(out)));
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(out, &end, false);
    if (j == NULL)
        fail_msg("not JSON: %s", out);
    assert_string_equal(end, "\n");
    assert_true(cJSON_IsObject(j));
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(j, "ts");
    assert_true(cJSON_IsString(ts));
    assert_int_equal(strlen(ts->valuestring), TS_LEN);
    check_timestamp(ts->valuestring);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "level")->valuestring, level);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "msg")->valuestring, msg);
    return j;
}

static const char *json_field(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsString(v))
        fail_msg("field %s missing or not a string", key);
    return v->valuestring;
}

static void test_json_basic(void **state)
{
    (void)state;
    capture("json");
    log_kv(LOG_WARN, "action", "subject", "falco.notice.x", "outcome", "failed (HTTP 500)", "attempts", "4", NULL);
    char *out = captured();
    assert_memory_equal(out, "{\"ts\":\"", 7);
    cJSON *j = parse_json_line(out, "warn", "action");
    assert_string_equal(json_field(j, "subject"), "falco.notice.x");
    assert_string_equal(json_field(j, "outcome"), "failed (HTTP 500)");
    assert_string_equal(json_field(j, "attempts"), "4");
    assert_int_equal(cJSON_GetArraySize(j), 6);
    cJSON_Delete(j);
    free(out);
}

static void test_json_escaping(void **state)
{
    (void)state;
    const char *nasty = "q\"uote b\\ack\nnew\ttab\rcr\x01one\x1f\x7f del caf\xc3\xa9 <!channel> {\"x\":1}";
    capture("json");
    log_kv(LOG_ERROR, "msg \"quoted\"\n", "value", nasty, "key \"q\"", "v", NULL);
    char *out = captured();
    cJSON *j = parse_json_line(out, "error", "msg \"quoted\"\n");
    assert_string_equal(json_field(j, "value"), nasty); /* round-trips exactly */
    assert_string_equal(json_field(j, "key \"q\""), "v");
    cJSON_Delete(j);
    free(out);
}

static void test_json_long_values(void **state)
{
    (void)state;
    size_t n = 5000;
    char *x = malloc(n + 1);
    assert_non_null(x);

    /* ASCII: cut at 1024 bytes, then "...". */
    memset(x, 'x', n);
    x[n] = 0;
    capture("json");
    log_kv(LOG_INFO, "m", "long", x, "after", "kept", NULL);
    char *out = captured();
    cJSON *j = parse_json_line(out, "info", "m");
    const char *v = json_field(j, "long");
    assert_int_equal(strlen(v), 1024 + 3);
    assert_memory_equal(v, x, 1024);
    assert_string_equal(v + 1024, "...");
    assert_string_equal(json_field(j, "after"), "kept");
    cJSON_Delete(j);
    free(out);

    /* Two-byte characters: cut on a character boundary. */
    for (size_t i = 0; i + 1 < n; i += 2)
        x[i] = '\xc3', x[i + 1] = '\xa9';
    capture("json");
    log_kv(LOG_INFO, "m", "long", x, NULL);
    out = captured();
    j = parse_json_line(out, "info", "m");
    v = json_field(j, "long");
    assert_true(text_utf8_valid(v, strlen(v)));
    assert_true(strlen(v) >= 1024 + 3 && strlen(v) <= 1024 + 4 + 3);
    assert_string_equal(v + strlen(v) - 3, "...");
    cJSON_Delete(j);
    free(out);

    /* Control characters grow six-fold when escaped: the cap counts output, and the line stays JSON. */
    memset(x, '\x01', n);
    capture("json");
    log_kv(LOG_INFO, "m", "ctl", x, NULL);
    out = captured();
    assert_true(strlen(out) < 1500);
    j = parse_json_line(out, "info", "m");
    v = json_field(j, "ctl");
    assert_string_equal(v + strlen(v) - 3, "...");
    assert_true(v[0] == '\x01');
    cJSON_Delete(j);
    free(out);

    /* The same in text format: one line, capped. */
    capture("text");
    log_kv(LOG_INFO, "m", "ctl", x, NULL);
    out = captured();
    assert_int_equal(count_char(out, '\n'), 1);
    assert_true(strlen(out) < 1500);
    assert_non_null(strstr(out, "...\"\n"));
    free(out);
    free(x);
}

static void test_json_dozen_capped_values(void **state)
{
    (void)state;
    /* The line has room for a dozen values at their cap, escaped at the worst ratio. */
    size_t n = 4000;
    char *x = malloc(n + 1);
    assert_non_null(x);
    memset(x, '\x02', n);
    x[n] = 0;
    capture("json");
    log_kv(LOG_INFO, "m", "k01", x, "k02", x, "k03", x, "k04", x, "k05", x, "k06", x, "k07", x, "k08", x, "k09", x,
           "k10", x, "k11", x, "k12", x, NULL);
    char *out = captured();
    cJSON *j = parse_json_line(out, "info", "m");
    assert_int_equal(cJSON_GetArraySize(j), 3 + 12);
    cJSON_Delete(j);
    free(out);

    /* Far beyond that, the line is cut, but it is still exactly one line. */
    capture("json");
    for (int rep = 0; rep < 2; rep++)
        log_kv(LOG_INFO, "m", "k01", x, "k02", x, "k03", x, "k04", x, "k05", x, "k06", x, "k07", x, "k08", x, "k09", x,
               "k10", x, "k11", x, "k12", x, "k13", x, "k14", x, "k15", x, "k16", x, "k17", x, "k18", x, "k19", x,
               "k20", x, "k21", x, "k22", x, "k23", x, "k24", x, "k25", x, "k26", x, "k27", x, "k28", x, "k29", x,
               "k30", x, "k31", x, "k32", x, "k33", x, "k34", x, "k35", x, "k36", x, "k37", x, "k38", x, "k39", x,
               "k40", x, NULL);
    out = captured();
    assert_int_equal(count_char(out, '\n'), 2);
    assert_true(strlen(out) <= 2 * 32768);
    free(out);
    free(x);
}

/* Fails if the raw line holds a character a terminal or viewer would act on: a C0 or C1 control (but the
 * final newline), U+2028/U+2029, a bidi override or isolate; or if it is not valid UTF-8. */
static void check_inert(const char *out)
{
    static const char *const forbidden[] = {"\xe2\x80\xa8", "\xe2\x80\xa9", "\xe2\x80\xaa", "\xe2\x80\xab",
                                            "\xe2\x80\xac", "\xe2\x80\xad", "\xe2\x80\xae", "\xe2\x81\xa6",
                                            "\xe2\x81\xa7", "\xe2\x81\xa8", "\xe2\x81\xa9"};
    size_t len = strlen(out);
    assert_true(text_utf8_valid(out, len));
    assert_int_equal(count_char(out, '\n'), 1);
    for (size_t i = 0; i + 1 < len; i++) {
        unsigned char c = (unsigned char)out[i];
        if (c < 0x20 || c == 0x7f || (c == 0xc2 && (unsigned char)out[i + 1] < 0xa0))
            fail_msg("raw control at byte %zu of %s", i, out);
    }
    for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++)
        if (strstr(out, forbidden[i]) != NULL)
            fail_msg("raw separator or bidi control in %s", out);
}

/* An attacker's subject: C1 controls (NEL), separators, bidi overrides, an isolate, invalid bytes. */
#define HOSTILE                                                                                                        \
    "a\xc2\x85"                                                                                                        \
    "b\xe2\x80\xa8"                                                                                                    \
    "c\xe2\x80\xae"                                                                                                    \
    "d\xe2\x81\xa6"                                                                                                    \
    "e\xff"                                                                                                            \
    "f\xc0\xaf"                                                                                                        \
    "g\xed\xa0\x80"                                                                                                    \
    "h"

static void test_text_escapes_unicode_controls(void **state)
{
    (void)state;
    capture("text");
    log_kv(LOG_INFO, "rejected \xe2\x80\xa9", "subject", HOSTILE, NULL);
    char *out = captured();
    check_inert(out);
    check_text_line(out, " info rejected \\u2029 subject=\"a\\u0085b\\u2028c\\u202ed\\u2066e\\ufffdf\\ufffd\\ufffd"
                         "g\\ufffd\\ufffd\\ufffdh\"\n");
    free(out);
}

static void test_json_escapes_unicode_controls(void **state)
{
    (void)state;
    capture("json");
    log_kv(LOG_INFO, "m", "subject", HOSTILE, NULL);
    char *out = captured();
    check_inert(out);
    assert_non_null(strstr(out, "\"subject\":\"a\\u0085b\\u2028c\\u202ed\\u2066e\\ufffdf\\ufffd\\ufffd"));
    cJSON *j = parse_json_line(out, "info", "m");
    /* valid characters round-trip; each invalid byte reads back as U+FFFD */
    assert_string_equal(json_field(j, "subject"), "a\xc2\x85"
                                                  "b\xe2\x80\xa8"
                                                  "c\xe2\x80\xae"
                                                  "d\xe2\x81\xa6"
                                                  "e\xef\xbf\xbd"
                                                  "f\xef\xbf\xbd\xef\xbf\xbd"
                                                  "g\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                                                  "h");
    cJSON_Delete(j);
    free(out);
}

struct writer {
    int id;
};

static void *write_lines(void *arg)
{
    const struct writer *w = arg;
    char id[16];
    snprintf(id, sizeof(id), "%d", w->id);
    for (int i = 0; i < 500; i++)
        log_kv(LOG_INFO, "concurrent", "writer", id, "filler",
               "0123456789012345678901234567890123456789012345678901234567890123456789", NULL);
    return NULL;
}

static void test_threads_do_not_interleave(void **state)
{
    (void)state;
    capture("json");
    pthread_t threads[4];
    struct writer writers[4];
    for (int i = 0; i < 4; i++) {
        writers[i].id = i;
        assert_int_equal(pthread_create(&threads[i], NULL, write_lines, &writers[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(threads[i], NULL);
    char *out = captured();
    int lines = 0;
    for (char *line = out, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        *nl = 0;
        cJSON *j = cJSON_Parse(line);
        if (j == NULL)
            fail_msg("line %d is not JSON: %s", lines + 1, line);
        cJSON_Delete(j);
        lines++;
    }
    assert_int_equal(lines, 4 * 500);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_text_basic, restore),
        cmocka_unit_test_teardown(test_text_quoting, restore),
        cmocka_unit_test_teardown(test_text_no_forged_lines, restore),
        cmocka_unit_test_teardown(test_null_values_skipped, restore),
        cmocka_unit_test_teardown(test_levels, restore),
        cmocka_unit_test_teardown(test_set_format, restore),
        cmocka_unit_test_teardown(test_json_basic, restore),
        cmocka_unit_test_teardown(test_json_escaping, restore),
        cmocka_unit_test_teardown(test_json_long_values, restore),
        cmocka_unit_test_teardown(test_json_dozen_capped_values, restore),
        cmocka_unit_test_teardown(test_text_escapes_unicode_controls, restore),
        cmocka_unit_test_teardown(test_json_escapes_unicode_controls, restore),
        cmocka_unit_test_teardown(test_threads_do_not_interleave, restore),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
