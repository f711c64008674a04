/*
 * fuzz_nkey.c: libFuzzer target for nkey_parse on a seed file's bytes. Checks: a refusal gives a reason and
 * never quotes the seed (not even 8 base32 characters of it); an accepted seed gives a user public key of
 * NKEY_PUBLIC_LEN base32 characters starting with U, and signs; the same seed line alone, or between the
 * decoration lines, gives the same key.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/nkey.h"

/* Whether the error quotes 8 or more consecutive base32 characters of the input (a piece of a seed; the
 * messages' own words are lower case, so the fuzzer cannot make them match by copying them in). */
static int quotes_input(const char *msg, const uint8_t *data, size_t size)
{
    size_t m = strlen(msg);
    for (size_t i = 0; i + 8 <= m; i++) {
        if (strspn(msg + i, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") < 8)
            continue;
        for (size_t j = 0; j + 8 <= size; j++)
            if (memcmp(msg + i, data + j, 8) == 0)
                return 1;
    }
    return 0;
}

static void check_key(const struct nkey *k)
{
    const char *pub = nkey_public(k);
    unsigned char sig[NKEY_SIGNATURE_LEN];
    if (strlen(pub) != NKEY_PUBLIC_LEN || pub[0] != 'U' ||
        strspn(pub, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") != NKEY_PUBLIC_LEN)
        abort();
    if (nkey_sign(k, (const unsigned char *)"nonce", 5, sig) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct nkey *k = NULL;
    struct error err;
    if (nkey_parse(&k, (const char *)data, size, &err) != 0) {
        if (k != NULL || memchr(err.msg, 0, sizeof(err.msg)) == NULL || err.msg[0] == 0 ||
            quotes_input(err.msg, data, size))
            abort();
        return 0;
    }
    check_key(k);
    /* The seed line again, trimmed, alone and decorated: the same key. */
    const char *pub = nkey_public(k);
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *stop = nl ? nl : end;
        const char *a = p, *b = stop;
        while (a < b && strchr(" \t\r\n\v\f", *a) && *a)
            a++;
        while (b > a && strchr(" \t\r\n\v\f", b[-1]) && b[-1])
            b--;
        if (b > a && !(b - a >= 3 && memcmp(a, "---", 3) == 0)) {
            char framed[256];
            struct nkey *again = NULL;
            size_t n = (size_t)(b - a);
            if (n > 200)
                abort(); /* a seed is 58 characters */
            memcpy(framed, "-----BEGIN USER NKEY SEED-----\n", 31);
            memcpy(framed + 31, a, n);
            memcpy(framed + 31 + n, "\n", 1);
            if (nkey_parse(&again, framed, 32 + n, &err) != 0 || strcmp(nkey_public(again), pub) != 0)
                abort();
            nkey_destroy(again);
            break;
        }
        p = nl ? nl + 1 : end;
    }
    nkey_destroy(k);
    return 0;
}
