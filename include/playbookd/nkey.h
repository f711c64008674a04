/*
 * nkey.h: a NATS user NKey read from its seed file (as `nk -gen user` writes it, or between the
 * -----BEGIN USER NKEY SEED----- lines of a decorated file): the public key that names the user to the
 * server, and an Ed25519 signature of the server's nonce. The seed is a secret: it stays in memory only as
 * OpenSSL's private key, and no message ever quotes the file.
 */
#ifndef PLAYBOOKD_NKEY_H
#define PLAYBOOKD_NKEY_H

#include <stddef.h>

#include "playbookd/error.h"

#define NKEY_PUBLIC_LEN 56 /* "U" and 55 more base32 characters */
#define NKEY_SIGNATURE_LEN 64

struct nkey;

/* Reads and checks a user seed file: unreadable, too large, not exactly one seed, a bad checksum or not a
 * user seed are errors that say which, never what the file holds. */
int nkey_load(struct nkey **out, const char *path, struct error *err);
/* The same from memory (surrounding whitespace and decoration lines ignored). */
int nkey_parse(struct nkey **out, const char *text, size_t len, struct error *err);
/* The user's public key, "U…", NUL-terminated. */
const char *nkey_public(const struct nkey *k);
/* Signs len bytes; 0, or -1 if OpenSSL fails. */
int nkey_sign(const struct nkey *k, const unsigned char *msg, size_t len, unsigned char sig[NKEY_SIGNATURE_LEN]);
/* Frees, wiping the key. NULL: no-op. */
void nkey_destroy(struct nkey *k);

#endif
