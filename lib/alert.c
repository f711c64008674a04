/*
 * alert.c: parses a Falco alert. The input is untrusted: it is size-capped, checked as UTF-8, parsed
 * with cJSON (nesting capped by cJSON at 1000), and only the fields playbookd uses are typed-checked.
 * Strings in struct alert point into the cJSON tree: no copies on the hot path.
 */
#include "playbookd/alert.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "playbookd/text.h"

static const char *const names[PRIORITY_COUNT] = {
    "Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug",
};
static const char *const tokens[PRIORITY_COUNT] = {
    "emergency", "alert", "critical", "error", "warning", "notice", "informational", "debug",
};

int priority_parse(const char *name, enum priority *out)
{
    for (int p = 0; p < PRIORITY_COUNT; p++) {
        if (strcasecmp(name, names[p]) == 0) {
            *out = (enum priority)p;
            return 0;
        }
    }
    if (strcasecmp(name, "Info") == 0) {
        *out = PRIORITY_INFORMATIONAL;
        return 0;
    }
    return -1;
}

const char *priority_name(enum priority p)
{
    return (unsigned)p < PRIORITY_COUNT ? names[p] : "Unknown";
}

const char *priority_token(enum priority p)
{
    return (unsigned)p < PRIORITY_COUNT ? tokens[p] : "unknown";
}

static const cJSON *member(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

/* An optional string member: "" when absent or not a string. */
static const char *optional_string(const cJSON *obj, const char *key)
{
    const cJSON *v = member(obj, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static const char *json_kind(const cJSON *v)
{
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsBool(v))
        return "a boolean";
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsArray(v))
        return "an array";
    return "an object";
}

static int parse_rule(struct alert *a, struct error *err)
{
    const cJSON *v = member(a->root, "rule");
    if (v == NULL)
        return error_set(err, "missing rule");
    if (!cJSON_IsString(v))
        return error_set(err, "rule is %s, not a string", json_kind(v));
    size_t len = strlen(v->valuestring);
    if (len == 0)
        return error_set(err, "empty rule");
    if (len > ALERT_MAX_RULE)
        return error_set(err, "rule too long (%zu bytes, limit %d)", len, ALERT_MAX_RULE);
    a->rule = v->valuestring;
    return 0;
}

/* A name ("Notice", any case) as Falco's JSON output has it, or 0..7 as its gRPC enum renders it. */
static int parse_priority(struct alert *a, struct error *err)
{
    const cJSON *v = member(a->root, "priority");
    if (v == NULL)
        return error_set(err, "missing priority");
    if (cJSON_IsString(v)) {
        if (priority_parse(v->valuestring, &a->priority) == 0)
            return 0;
        char shown[40];
        return error_set(err, "unknown priority \"%s\"", text_copy(shown, sizeof(shown), v->valuestring));
    }
    if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < PRIORITY_COUNT &&
        v->valuedouble == floor(v->valuedouble)) {
        a->priority = (enum priority)v->valueint;
        return 0;
    }
    if (cJSON_IsNumber(v))
        return error_set(err, "unknown priority %g", v->valuedouble);
    return error_set(err, "priority is %s, not a string", json_kind(v));
}

/* RFC 3339 text as Falco writes it, or gRPC's {"seconds": S, "nanos": N} rendered as such. */
static void parse_time(struct alert *a)
{
    const cJSON *v = member(a->root, "time");
    a->time = "";
    if (cJSON_IsString(v)) {
        a->time = v->valuestring;
        return;
    }
    const cJSON *s = member(v, "seconds"), *ns = member(v, "nanos");
    if (!cJSON_IsNumber(s) || s->valuedouble < 0 || s->valuedouble > 253402300799.0)
        return;
    time_t secs = (time_t)s->valuedouble;
    long nanos = cJSON_IsNumber(ns) && ns->valuedouble >= 0 && ns->valuedouble < 1e9 ? (long)ns->valuedouble : 0;
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL)
        return;
    size_t n = strftime(a->time_buf, sizeof(a->time_buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(a->time_buf + n, sizeof(a->time_buf) - n, ".%09ldZ", nanos);
    a->time = a->time_buf;
}

static int parse_fields(struct alert *a, struct error *err)
{
    const cJSON *v = member(a->root, "output_fields");
    if (v == NULL)
        return 0;
    if (!cJSON_IsObject(v))
        return error_set(err, "output_fields is %s, not an object", json_kind(v));
    a->fields = v;
    return 0;
}

static int parse_tree(struct alert *a, const char *data, size_t len, struct error *err)
{
    const char *end = NULL;
    a->root = cJSON_ParseWithLengthOpts(data, len, &end, false);
    if (a->root == NULL)
        return error_set(err, "invalid JSON near byte %td", end ? end - data : (ptrdiff_t)0);
    for (; end < data + len; end++)
        if (*end != ' ' && *end != '\t' && *end != '\r' && *end != '\n')
            return error_set(err, "trailing data after the JSON object at byte %td", end - data);
    if (!cJSON_IsObject(a->root))
        return error_set(err, "not a JSON object but %s", json_kind(a->root));
    return 0;
}

/*
 * True if a JSON string in data holds the escape \u0000: cJSON would decode it into a NUL that cuts the
 * string short for every C check after it ("victim\u0000/../x" would be checked as "victim").
 */
static bool has_nul_escape(const char *data, size_t len)
{
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '"') {
            in_string = !in_string;
        } else if (in_string && data[i] == '\\' && i + 1 < len) {
            if (data[i + 1] == 'u' && i + 5 < len && memcmp(data + i + 2, "0000", 4) == 0)
                return true;
            i++; /* the escaped character, \\ and \" included */
        }
    }
    return false;
}

int alert_parse(struct alert *a, const char *data, size_t len, struct error *err)
{
    memset(a, 0, sizeof(*a));
    if (len > ALERT_MAX_BYTES)
        return error_set(err, "message too large (%zu bytes, limit %d)", len, ALERT_MAX_BYTES);
    if (len == 0)
        return error_set(err, "empty message");
    if (!text_utf8_valid(data, len))
        return error_set(err, "invalid UTF-8");
    if (has_nul_escape(data, len))
        return error_set(err, "a string holds a NUL character (\\u0000)");
    if (parse_tree(a, data, len, err) != 0 || parse_rule(a, err) != 0 || parse_priority(a, err) != 0 ||
        parse_fields(a, err) != 0) {
        alert_free(a);
        return -1;
    }
    parse_time(a);
    a->output = optional_string(a->root, "output");
    a->hostname = optional_string(a->root, "hostname");
    a->source = optional_string(a->root, "source");
    const cJSON *tags = member(a->root, "tags");
    a->tags = cJSON_IsArray(tags) ? tags : NULL;
    return 0;
}

void alert_free(struct alert *a)
{
    cJSON_Delete(a->root);
    a->root = NULL;
}

const char *alert_field(const struct alert *a, const char *key, char *buf, size_t size)
{
    const cJSON *v = member(a->fields, key);
    if (cJSON_IsString(v))
        return v->valuestring;
    if (cJSON_IsBool(v)) {
        snprintf(buf, size, "%s", cJSON_IsTrue(v) ? "true" : "false");
        return buf;
    }
    if (!cJSON_IsNumber(v))
        return NULL;
    /*
     * As Falco prints it: an integer in full (beyond 2^53 cJSON keeps a double, so the last digits of a
     * nanosecond evt.time are rounded), anything else in the fewest digits that read back the same (0.5).
     */
    double d = v->valuedouble;
    if (d == floor(d) && fabs(d) < 9.2e18) {
        snprintf(buf, size, "%.0f", d);
        return buf;
    }
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, size, "%.*g", digits, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    return buf;
}
