/* fuzz_alert.c: libFuzzer target for alert_parse, then the subject and output fields of what it accepts. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/alert.h"
#include "playbookd/subject.h"

static const char *const keys[] = {
    "k8s.pod.name", "k8s.ns.name", "k8s.pod.uid", "container.id", "container.name", "evt.time", "proc.cmdline", "",
};

static volatile size_t sink; /* keeps the reads from being optimised away */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct alert a;
    struct error err;
    if (alert_parse(&a, (const char *)data, size, &err) != 0) {
        if (memchr(err.msg, 0, sizeof(err.msg)) == NULL)
            abort(); /* the reason is always a string */
        return 0;
    }
    if (a.rule == NULL || *a.rule == 0 || strlen(a.rule) > ALERT_MAX_RULE || (unsigned)a.priority >= PRIORITY_COUNT)
        abort();
    size_t touched = strlen(a.output) + strlen(a.time) + strlen(a.hostname) + strlen(a.source);

    char subject[SUBJECT_MAX];
    int n = subject_for_alert(&a, subject, sizeof(subject));
    if (n >= 0) {
        /* A derived subject is well-formed and reached by the usual wildcard patterns. */
        if ((size_t)n != strlen(subject) || subject_pattern_check(subject, NULL) != 0 ||
            !subject_matches("falco.>", subject) || !subject_matches("falco.*.*", subject) ||
            !subject_matches(subject, subject))
            abort();
    }

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char buf[64], tiny[2];
        const char *v = alert_field(&a, keys[i], buf, sizeof(buf));
        if (v != NULL)
            touched += strlen(v);
        v = alert_field(&a, keys[i], tiny, sizeof(tiny));
        if (v != NULL)
            touched += strlen(v);
    }
    /* Every key of output_fields, whatever its kind. */
    if (a.fields != NULL) {
        for (const cJSON *f = a.fields->child; f != NULL; f = f->next) {
            char buf[64];
            const char *v = alert_field(&a, f->string, buf, sizeof(buf));
            if (v != NULL)
                touched += strlen(v);
            else if ((cJSON_IsString(f) || cJSON_IsNumber(f) || cJSON_IsBool(f)) &&
                     cJSON_GetObjectItemCaseSensitive(a.fields, f->string) == f)
                abort(); /* a kind that renders came back as NULL (with duplicate keys, the first one counts) */
        }
    }
    alert_free(&a);
    sink = touched;
    return 0;
}
