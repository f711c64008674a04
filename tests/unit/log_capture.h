/* log_capture.h: shared by unit tests that assert what was logged: the log goes to memory in between. */
#ifndef PLAYBOOKD_TEST_LOG_CAPTURE_H
#define PLAYBOOKD_TEST_LOG_CAPTURE_H

#include <stdio.h>

#include "playbookd/log.h"

static char *log_buf;
static size_t log_len;

/* Sends the log to memory until captured_log(). */
static FILE *capture_log(void)
{
    FILE *mem = open_memstream(&log_buf, &log_len);
    assert_non_null(mem);
    log_set_stream(mem);
    return mem;
}

/* Everything logged since capture_log(); malloc'd. */
static char *captured_log(FILE *mem)
{
    log_set_stream(NULL);
    fclose(mem);
    return log_buf;
}

#endif
