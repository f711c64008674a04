/*
 * fuzz_kube_status.c: libFuzzer target for kube_response_take on an API server's answer (a Status object,
 * or anything a proxy in between sends), for each status. Checks: the message kube.c makes of it
 * ("Reason: message", or the start of a body that is not a Status) is NUL-terminated within its buffer and
 * valid UTF-8, since it is quoted in action reasons, logs and Events; the body is kept whole and parsed on
 * demand.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/http.h"
#include "playbookd/kube.h"
#include "playbookd/text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[] = {200, 404, 409, 422, 429, 500};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        struct http_response http = {.status = statuses[i], .body = malloc(size + 1), .body_len = size};
        struct kube_response resp;
        if (http.body == NULL)
            return 0;
        memcpy(http.body, data, size);
        http.body[size] = 0; /* as http.c delivers it */
        memset(&resp, 0, sizeof(resp));
        kube_response_take(&resp, &http);
        if (http.body != NULL || resp.body_len != size || memcmp(resp.body, data, size) != 0)
            abort();
        if (memchr(resp.message, 0, sizeof(resp.message)) == NULL ||
            !text_utf8_valid(resp.message, strlen(resp.message)))
            abort();
        kube_response_json(&resp);
        kube_patch_test_failed(resp.json);
        kube_patch_uid_refused(&resp);
        kube_response_free(&resp);
    }
    return 0;
}
