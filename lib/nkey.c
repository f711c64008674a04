/*
 * nkey.c: a NATS user NKey from its seed file. The format is NATS's (nats-io/nkeys, and nats.c's
 * src/nkeys.c): base32 (RFC 4648, no padding) of two prefix bytes (seed, user), the 32-byte Ed25519 seed,
 * and a CRC-16/XMODEM of those 34 bytes, little-endian. The public key is base32 of the user prefix byte,
 * the 32-byte Ed25519 public key and its CRC-16. The Ed25519 arithmetic is OpenSSL's (libcrypto), whose
 * raw-key interface takes the 32-byte seed as RFC 8032 does; nothing here is cryptography of our own.
 * Every buffer that held the seed is wiped before it is freed.
 */
#include "playbookd/nkey.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NKEY_FILE_MAX 4096
#define PREFIX_SEED (18 << 3) /* base32 "S" */
#define PREFIX_USER (20 << 3) /* base32 "U" */
#define RAW_KEY 32
#define SEED_RAW (2 + RAW_KEY + 2)
#define PUBLIC_RAW (1 + RAW_KEY + 2)

struct nkey {
    EVP_PKEY *pkey;
    char public_key[NKEY_PUBLIC_LEN + 1];
};

static const char base32_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

static uint16_t crc16_xmodem(const unsigned char *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

/* Decodes exactly `want` bytes from n base32 characters; the bits left over must be zero. */
static bool base32_decode(const char *s, size_t n, unsigned char *out, size_t want)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *at = s[i] ? strchr(base32_alphabet, s[i]) : NULL;
        if (at == NULL)
            return false;
        acc = (acc << 5) | (uint32_t)(at - base32_alphabet);
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            if (o == want)
                return false;
            out[o++] = (unsigned char)(acc >> bits);
        }
        acc &= (1u << bits) - 1;
    }
    return o == want && acc == 0;
}

static void base32_encode(const unsigned char *in, size_t n, char *out)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            out[o++] = base32_alphabet[(acc >> bits) & 31];
        }
        acc &= (1u << bits) - 1;
    }
    if (bits > 0)
        out[o++] = base32_alphabet[(acc << (5 - bits)) & 31];
    out[o] = 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/*
 * The one line holding the seed: lines are trimmed; empty lines and decoration lines ("-----BEGIN …",
 * "------END …") are passed over; any other line counts. *found is how many counted.
 */
static void find_seed_line(const char *text, size_t len, const char **line, size_t *line_len, int *found)
{
    *found = 0;
    for (size_t i = 0; i < len;) {
        size_t end = i;
        while (end < len && text[end] != '\n')
            end++;
        size_t a = i, b = end;
        while (a < b && is_space(text[a]))
            a++;
        while (b > a && is_space(text[b - 1]))
            b--;
        if (b > a && !(b - a >= 3 && memcmp(text + a, "---", 3) == 0)) {
            if (++*found == 1) {
                *line = text + a;
                *line_len = b - a;
            }
        }
        i = end + 1;
    }
}

/* The raw seed's 32 key bytes, checked: length, alphabet, checksum, seed and user prefixes. */
static int decode_seed(const char *s, size_t n, unsigned char key[RAW_KEY], struct error *err)
{
    unsigned char raw[SEED_RAW];
    int rc = -1;
    if (n < 2 || s[0] != 'S')
        error_set(err, "not an NKey seed (a seed starts with S; a user seed with SU)");
    else if (!base32_decode(s, n, raw, sizeof(raw)))
        error_set(err, "not an NKey seed (wrong length or characters outside base32)");
    else if (crc16_xmodem(raw, SEED_RAW - 2) != (uint16_t)(raw[SEED_RAW - 2] | raw[SEED_RAW - 1] << 8))
        error_set(err, "the NKey seed's checksum is wrong (a character was changed or lost)");
    else if ((raw[0] & 0xf8) != PREFIX_SEED)
        error_set(err, "not an NKey seed");
    else if ((((raw[0] & 7) << 5) | ((raw[1] & 0xf8) >> 3)) != PREFIX_USER)
        error_set(err, "not a user NKey seed (it starts with SU; this one is for another kind of key)");
    else {
        memcpy(key, raw + 2, RAW_KEY);
        rc = 0;
    }
    OPENSSL_cleanse(raw, sizeof(raw));
    return rc;
}

static int make_key(struct nkey *k, const unsigned char seed[RAW_KEY], struct error *err)
{
    unsigned char raw[PUBLIC_RAW];
    size_t pub_len = RAW_KEY;
    k->pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, RAW_KEY);
    if (k->pkey == NULL || EVP_PKEY_get_raw_public_key(k->pkey, raw + 1, &pub_len) != 1 || pub_len != RAW_KEY)
        return error_set(err, "OpenSSL cannot make an Ed25519 key from the seed");
    raw[0] = PREFIX_USER;
    uint16_t crc = crc16_xmodem(raw, 1 + RAW_KEY);
    raw[1 + RAW_KEY] = (unsigned char)(crc & 0xff);
    raw[2 + RAW_KEY] = (unsigned char)(crc >> 8);
    base32_encode(raw, sizeof(raw), k->public_key);
    return 0;
}

int nkey_parse(struct nkey **out, const char *text, size_t len, struct error *err)
{
    const char *line = NULL;
    size_t line_len = 0;
    int found;
    unsigned char seed[RAW_KEY];
    struct nkey *k = NULL;
    int rc = -1;
    *out = NULL;
    find_seed_line(text, len, &line, &line_len, &found);
    if (found != 1) {
        error_set(err,
                  found == 0 ? "no NKey seed in it (empty)"
                             : "expected one NKey seed on one line, found %d lines (a .creds file goes "
                               "in credentials, not nkey)",
                  found);
        goto out;
    }
    if (decode_seed(line, line_len, seed, err) != 0)
        goto out;
    if ((k = calloc(1, sizeof(*k))) == NULL) {
        error_set(err, "out of memory");
        goto out;
    }
    if (make_key(k, seed, err) != 0)
        goto out;
    *out = k;
    k = NULL;
    rc = 0;
out:
    OPENSSL_cleanse(seed, sizeof(seed));
    nkey_destroy(k);
    return rc;
}

/* Reads at most NKEY_FILE_MAX bytes into buf (no stdio: no copy of the secret left in a FILE buffer). */
static int read_small_file(const char *path, char *buf, size_t *len, struct error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return error_set(err, "cannot open: %s", strerror(errno));
    size_t n = 0;
    ssize_t r = 0;
    while (n <= NKEY_FILE_MAX && (r = read(fd, buf + n, NKEY_FILE_MAX + 1 - n)) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        n += (size_t)r;
    }
    int saved = errno;
    close(fd);
    *len = n;
    if (r < 0)
        return error_set(err, "cannot read: %s", strerror(saved));
    if (n > NKEY_FILE_MAX)
        return error_set(err, "larger than %d bytes: not an NKey seed file", NKEY_FILE_MAX);
    return 0;
}

int nkey_load(struct nkey **out, const char *path, struct error *err)
{
    char buf[NKEY_FILE_MAX + 1];
    size_t len = 0;
    struct error why;
    *out = NULL;
    int rc = read_small_file(path, buf, &len, &why);
    if (rc == 0)
        rc = nkey_parse(out, buf, len, &why);
    OPENSSL_cleanse(buf, sizeof(buf));
    return rc == 0 ? 0 : error_set(err, "nkey %s: %s", path, why.msg);
}

const char *nkey_public(const struct nkey *k)
{
    return k->public_key;
}

int nkey_sign(const struct nkey *k, const unsigned char *msg, size_t len, unsigned char sig[NKEY_SIGNATURE_LEN])
{
    size_t sig_len = NKEY_SIGNATURE_LEN;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
             EVP_DigestSign(ctx, sig, &sig_len, msg, len) == 1 && sig_len == NKEY_SIGNATURE_LEN;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -1;
}

void nkey_destroy(struct nkey *k)
{
    if (k == NULL)
        return;
    EVP_PKEY_free(k->pkey); /* OpenSSL clears the private key it frees */
    free(k);
}
