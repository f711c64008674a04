/*
 * bench_parse.c: the per-alert cost on the hot path without I/O: parse a Falco alert, derive its
 * subject, match it against a few patterns. Runs the sample alerts many times; prints ns per alert for
 * each of several runs and their median.
 *   make bench   (or: build/release/bench_parse FILE.jsonl)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "playbookd/alert.h"
#include "playbookd/subject.h"
#include "playbookd/text.h"

#define RUNS 7
#define ROUNDS 20000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    static const char *const patterns[] = {"falco.*.*", "falco.notice.terminal_shell_in_container", "falco.>"};
    struct error err;
    size_t len, n = 0, starts[256], lens[256];
    char *text = text_read_file(argc > 1 ? argv[1] : "examples/alerts.jsonl", 1 << 24, &len, &err);
    if (text == NULL) {
        fprintf(stderr, "bench_parse: %s\n", err.msg);
        return 1;
    }
    for (size_t i = 0; i < len && n < 256;) {
        size_t end = i + strcspn(text + i, "\n");
        if (end > i)
            starts[n] = i, lens[n++] = end - i;
        i = end + 1;
    }
    double ns[RUNS];
    unsigned long matched = 0;
    for (int r = 0; r < RUNS; r++) {
        double t0 = now_s();
        for (int k = 0; k < ROUNDS; k++)
            for (size_t i = 0; i < n; i++) {
                struct alert a;
                char subject[SUBJECT_MAX];
                if (alert_parse(&a, text + starts[i], lens[i], &err) != 0)
                    continue;
                if (subject_for_alert(&a, subject, sizeof(subject)) > 0)
                    for (size_t p = 0; p < 3; p++)
                        matched += subject_matches(patterns[p], subject);
                alert_free(&a);
            }
        ns[r] = (now_s() - t0) * 1e9 / ((double)ROUNDS * (double)n);
        printf("run %d: %.0f ns per alert\n", r + 1, ns[r]);
    }
    qsort(ns, RUNS, sizeof(ns[0]), cmp);
    printf("median: %.0f ns per alert (%zu alerts x %d rounds, %d runs; %lu matches)\n", ns[RUNS / 2], n, ROUNDS, RUNS,
           matched);
    free(text);
    return 0;
}
