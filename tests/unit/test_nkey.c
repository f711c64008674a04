/*
 * test_nkey.c: unit tests for NKey seeds: the public key derived from a seed equals the one generated
 * independently (python3-cryptography's Ed25519 and the standard library's base32 and crc_hqx, as in
 * tests/integration/test_nats_auth.py; a test-only key, never used anywhere else); a signature is 64 bytes
 * and differs per message; malformed seeds are refused with a reason that does not quote them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "playbookd/nkey.h"

/* TEST ONLY: generated for this file by tests/integration/test_nats_auth.py's nkey_pair(). */
#define TEST_SEED "SUAHUKV2XNHNVU363SQVOEJWPFSM76DGOCLPY4DCXH6QNXWYQO2L3S4FS4"
#define TEST_PUBLIC "UDU3PI3CYHXWOYF4XH7ILSDDYPWKRQ2KDWKWWV2TBC6ZR42QWE3HHOV2"

static struct nkey *parse(const char *text, struct error *err)
{
    struct nkey *k = NULL;
    if (nkey_parse(&k, text, strlen(text), err) != 0)
        assert_null(k);
    return k;
}

static void test_public_key_from_seed(void **state)
{
    (void)state;
    struct error err;
    struct nkey *k = parse(TEST_SEED "\n", &err);
    assert_non_null(k);
    assert_string_equal(nkey_public(k), TEST_PUBLIC);
    assert_int_equal(strlen(nkey_public(k)), NKEY_PUBLIC_LEN);
    nkey_destroy(k);
}

static void test_whitespace_and_decoration(void **state)
{
    (void)state;
    struct error err;
    struct nkey *k =
        parse("\r\n-----BEGIN USER NKEY SEED-----\r\n \t" TEST_SEED " \r\n------END USER NKEY SEED------\n\n", &err);
    assert_non_null(k);
    assert_string_equal(nkey_public(k), TEST_PUBLIC);
    nkey_destroy(k);
}

static void test_signature(void **state)
{
    (void)state;
    struct error err;
    unsigned char a[NKEY_SIGNATURE_LEN], b[NKEY_SIGNATURE_LEN], c[NKEY_SIGNATURE_LEN];
    struct nkey *k = parse(TEST_SEED, &err);
    assert_non_null(k);
    assert_int_equal(nkey_sign(k, (const unsigned char *)"nonce-1", 7, a), 0);
    assert_int_equal(nkey_sign(k, (const unsigned char *)"nonce-1", 7, b), 0);
    assert_int_equal(nkey_sign(k, (const unsigned char *)"nonce-2", 7, c), 0);
    assert_memory_equal(a, b, sizeof(a)); /* Ed25519 is deterministic */
    assert_memory_not_equal(a, c, sizeof(a));
    nkey_destroy(k);
}

static void refused(const char *text, const char *reason)
{
    struct error err = {{0}};
    assert_null(parse(text, &err));
    assert_non_null(strstr(err.msg, reason));
    assert_null(strstr(err.msg, "SUAH"));
    assert_null(strstr(err.msg, "HUKV2"));
}

static void test_malformed(void **state)
{
    (void)state;
    refused("", "empty");
    refused(" \n\t\r\n", "empty");
    refused(TEST_SEED "\n" TEST_SEED "\n", "found 2 lines");
    refused("SUAHUKV2XNINVU363SQVOEJWPFSM76DGOCLPY4DCXH6QNXWYQO2L3S4FS4", "checksum");       /* one character changed */
    refused("SUAHUKV2XNHNVU363SQVOEJWPFSM76DGOCLPY4DCXH6QNXWYQO2L3S4F", "not an NKey seed"); /* cut short */
    refused("SUAHUKV2XNHNVU363SQVOEJWPFSM76DGOCLPY4DCXH6QNXWYQO2L3S4FS4AA", "not an NKey seed"); /* too long */
    refused("SUAHUKV2XNHNVU363SQVOEJWPFSM76DGOCLPY4DCXH6QNXWYQO2L3S4F84", "not an NKey seed");   /* 8: not base32 */
    refused("suahukv2xnhnvu363sqvoejwpfsm76dgoclpy4dcxh6qnxwyqo2l3s4fs4", "not an NKey seed");
    refused(TEST_PUBLIC, "not an NKey seed");
    refused("S", "not an NKey seed");
}

static void test_load_missing_file(void **state)
{
    (void)state;
    struct nkey *k = NULL;
    struct error err;
    assert_int_equal(nkey_load(&k, "/nonexistent/seed", &err), -1);
    assert_null(k);
    assert_non_null(strstr(err.msg, "nkey /nonexistent/seed: cannot open"));
    nkey_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_public_key_from_seed),
        cmocka_unit_test(test_whitespace_and_decoration),
        cmocka_unit_test(test_signature),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_load_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
