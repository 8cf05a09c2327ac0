/* Tokens, hashes, passwords, UUIDs and the hub's key files (see secrets.h
 * for the formats and why they are what they are). */
#include "secrets.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "cn_err.h"
#include "hub_err.h"
#include "cn_errmsg.h"
#include "cn_id.h"

_Static_assert(HUB_PASSWORD_HASH_SIZE == crypto_pwhash_STRBYTES, "pwhash string size");
_Static_assert(HUB_KEY_BYTES == crypto_generichash_BYTES, "token hash size");
_Static_assert(HUB_KEY_BYTES >= crypto_generichash_KEYBYTES_MIN &&
                   HUB_KEY_BYTES <= crypto_generichash_KEYBYTES_MAX,
               "secret key size");
_Static_assert(HUB_KEY_BYTES == crypto_scalarmult_BYTES, "X25519 key size");
_Static_assert(HUB_KEY_B64_SIZE == CN_ID_KEY_B64URL_SIZE && HUB_UUID_LEN == CN_ID_UUID_LEN,
               "cn_id sizes");
_Static_assert(HUB_KEY_B64_SIZE ==
                   sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
               "base64url size");
_Static_assert(HUB_TOKEN_STR_SIZE ==
                   4 + sodium_base64_ENCODED_LEN(HUB_TOKEN_BYTES,
                                                 sodium_base64_VARIANT_URLSAFE_NO_PADDING),
               "token size");

#define B64URL sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define PASSWORD_INPUT_MAX 1024

int hub_secrets_init(void)
{
    return sodium_init() < 0 ? CN_ECRYPTO : 0;
}

static bool known_prefix(const char *prefix)
{
    return prefix &&
           (!strcmp(prefix, HUB_TOKEN_PREFIX_API) || !strcmp(prefix, HUB_TOKEN_PREFIX_ENROLL));
}

int hub_token_generate(const char *prefix, char out[static HUB_TOKEN_STR_SIZE])
{
    out[0] = '\0';
    if (!known_prefix(prefix))
        return CN_EINVAL;
    if (hub_secrets_init() < 0)
        return CN_ECRYPTO;
    uint8_t raw[HUB_TOKEN_BYTES];
    randombytes_buf(raw, sizeof(raw));
    memcpy(out, prefix, 4);
    sodium_bin2base64(out + 4, HUB_TOKEN_STR_SIZE - 4, raw, sizeof(raw), B64URL);
    sodium_memzero(raw, sizeof(raw));
    return 0;
}

bool hub_token_well_formed(const char *prefix, const char *token)
{
    if (!known_prefix(prefix) || !token || strncmp(token, prefix, 4) != 0)
        return false;
    if (strnlen(token, HUB_TOKEN_STR_SIZE) != HUB_TOKEN_STR_LEN)
        return false;
    if (hub_secrets_init() < 0)
        return false;
    /* Decode and re-encode: only the canonical spelling of 32 bytes passes,
     * so one secret never has two accepted spellings. */
    uint8_t raw[HUB_TOKEN_BYTES];
    size_t n = 0;
    char again[HUB_TOKEN_STR_SIZE];
    bool ok = sodium_base642bin(raw, sizeof(raw), token + 4, HUB_TOKEN_STR_LEN - 4, NULL, &n, NULL,
                                B64URL) == 0 &&
              n == sizeof(raw);
    if (ok) {
        sodium_bin2base64(again, sizeof(again) - 4, raw, sizeof(raw), B64URL);
        ok = !strcmp(again, token + 4);
    }
    sodium_memzero(raw, sizeof(raw));
    sodium_memzero(again, sizeof(again));
    return ok;
}

int hub_token_hash(const uint8_t key[static HUB_KEY_BYTES], const char *token,
                   uint8_t out[static HUB_KEY_BYTES])
{
    if (!token)
        return CN_EINVAL;
    size_t n = strnlen(token, 1025);
    if (n > 1024)
        return CN_EINVAL;
    if (hub_secrets_init() < 0)
        return CN_ECRYPTO;
    if (crypto_generichash(out, HUB_KEY_BYTES, (const uint8_t *)token, n, key, HUB_KEY_BYTES) != 0)
        return CN_ECRYPTO;
    return 0;
}

bool hub_hash_equal(const uint8_t a[static HUB_KEY_BYTES], const uint8_t b[static HUB_KEY_BYTES])
{
    return crypto_verify_32(a, b) == 0;
}

int hub_password_generate(char out[static HUB_PASSWORD_SIZE])
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    if (hub_secrets_init() < 0) {
        out[0] = '\0';
        return CN_ECRYPTO;
    }
    /* randombytes_uniform() rejects biased draws, so every character is
     * uniform over the 62 symbols: 24 * log2(62) ~ 142 bits. */
    for (size_t i = 0; i < HUB_PASSWORD_LEN; i++)
        out[i] = alphabet[randombytes_uniform(sizeof(alphabet) - 1)];
    out[HUB_PASSWORD_LEN] = '\0';
    return 0;
}

int hub_password_hash(const char *password, char out[static HUB_PASSWORD_HASH_SIZE])
{
    out[0] = '\0';
    if (!password)
        return CN_EINVAL;
    size_t n = strnlen(password, PASSWORD_INPUT_MAX + 1);
    if (n == 0 || n > PASSWORD_INPUT_MAX)
        return CN_EINVAL;
    if (hub_secrets_init() < 0)
        return CN_ECRYPTO;
    if (crypto_pwhash_str(out, password, n, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        return CN_ENOMEM; /* the only documented failure: memory */
    return 0;
}

int hub_password_verify(const char *hash, const char *password)
{
    if (!hash || !password || strnlen(hash, HUB_PASSWORD_HASH_SIZE) >= HUB_PASSWORD_HASH_SIZE)
        return CN_EAUTH;
    size_t n = strnlen(password, PASSWORD_INPUT_MAX + 1);
    if (n > PASSWORD_INPUT_MAX || hub_secrets_init() < 0)
        return CN_EAUTH;
    return crypto_pwhash_str_verify(hash, password, n) == 0 ? 0 : CN_EAUTH;
}

void hub_uuid_v4(char out[static HUB_UUID_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t b[16];
    /* randombytes works (from the OS) even when the init failed: nothing to do. */
    if (hub_secrets_init() < 0) {
    }
    randombytes_buf(b, sizeof(b));
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* variant 10xx */
    size_t o = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

bool hub_uuid_valid(const char *s)
{
    return cn_id_is_uuid_lower(s);
}

int hub_secret_path(const char *db_path, const char *suffix, char *out, size_t outlen)
{
    if (!db_path || !*db_path || !suffix || !out || !outlen)
        return CN_EINVAL;
    int n = snprintf(out, outlen, "%s%s", db_path, suffix);
    if (n < 0 || (size_t)n >= outlen) {
        out[0] = '\0';
        return CN_ETOOBIG;
    }
    return 0;
}

/* Writes `n` bytes to a new private file: O_EXCL so nothing is overwritten,
 * O_NOFOLLOW so a planted symlink is not followed, 0600 from the start (and
 * again with fchmod, whatever the umask), fsync so the key is on disk before
 * anything is hashed with it. A failed write leaves no file behind. */
static int write_private_file(const char *path, const uint8_t *p, size_t n, char *err,
                              size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        return cn_errf(e == EEXIST ? HUB_ECONFLICT : CN_EIO, err, errlen, "cannot create %s: %s",
                       path, strerror(e));
    }
    size_t off = 0;
    int rc = 0;
    if (fchmod(fd, 0600) != 0) {
        rc = cn_errf(CN_EIO, err, errlen, "cannot chmod %s: %s", path, strerror(errno));
        goto fail;
    }
    while (off < n) {
        ssize_t w = write(fd, p + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = cn_errf(CN_EIO, err, errlen, "cannot write %s: %s", path, strerror(errno));
            goto fail;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0) {
        rc = cn_errf(CN_EIO, err, errlen, "cannot sync %s: %s", path, strerror(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = cn_errf(CN_EIO, err, errlen, "cannot close %s: %s", path, strerror(errno));
        goto fail;
    }
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    unlink(path);
    return rc;
}

/* Reads exactly `n` bytes from a private file, refusing symlinks, anything
 * but a regular file, and any group/other permission bit. */
static int read_private_file(const char *path, uint8_t *p, size_t n, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT) {
            return cn_errf(CN_ENOTFOUND, err, errlen, "%s does not exist (run 'connect-hub init')",
                           path);
        }
        if (e == ELOOP) {
            return cn_errf(CN_EREFUSED, err, errlen,
                           "%s is a symbolic link; refusing to use it as a key file", path);
        }
        return cn_errf(CN_EIO, err, errlen, "cannot open %s: %s", path, strerror(e));
    }
    int rc = 0;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        rc = cn_errf(CN_EIO, err, errlen, "cannot stat %s: %s", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = cn_errf(CN_EREFUSED, err, errlen, "%s is not a regular file", path);
        goto done;
    }
    if (sb.st_mode & 077) {
        rc = cn_errf(CN_EREFUSED, err, errlen,
                     "%s is accessible by group or others (mode %04o); run: chmod 600 %s", path,
                     (unsigned)(sb.st_mode & 07777), path);
        goto done;
    }
    if (sb.st_size != (off_t)n) {
        rc = cn_errf(CN_EINVAL, err, errlen, "%s holds %lld bytes, expected %zu", path,
                     (long long)sb.st_size, n);
        goto done;
    }
    size_t off = 0;
    while (off < n) {
        ssize_t r = read(fd, p + off, n - off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = cn_errf(CN_EIO, err, errlen, "cannot read %s: %s", path,
                         r < 0 ? strerror(errno) : "short file");
            goto done;
        }
        off += (size_t)r;
    }
done:
    close(fd);
    if (rc < 0)
        sodium_memzero(p, n);
    return rc;
}

int hub_secret_key_create(const char *path, uint8_t key[static HUB_KEY_BYTES], char *err,
                          size_t errlen)
{
    if (!path)
        return CN_EINVAL;
    if (hub_secrets_init() < 0)
        return CN_ECRYPTO;
    randombytes_buf(key, HUB_KEY_BYTES);
    int rc = write_private_file(path, key, HUB_KEY_BYTES, err, errlen);
    if (rc < 0)
        sodium_memzero(key, HUB_KEY_BYTES);
    return rc;
}

int hub_secret_key_load(const char *path, uint8_t key[static HUB_KEY_BYTES], char *err,
                        size_t errlen)
{
    if (!path)
        return CN_EINVAL;
    return read_private_file(path, key, HUB_KEY_BYTES, err, errlen);
}

static int derive_public(hub_keypair_t *kp)
{
    if (crypto_scalarmult_base(kp->public_key, kp->secret_key) != 0) {
        hub_keypair_wipe(kp);
        return CN_ECRYPTO;
    }
    return 0;
}

int hub_keypair_create(const char *path, hub_keypair_t *kp, char *err, size_t errlen)
{
    if (!path || !kp)
        return CN_EINVAL;
    if (hub_secrets_init() < 0)
        return CN_ECRYPTO;
    randombytes_buf(kp->secret_key, sizeof(kp->secret_key));
    int rc = derive_public(kp);
    if (rc < 0) {
        return cn_errf(rc, err, errlen, "cannot derive the hub public key");
    }
    rc = write_private_file(path, kp->secret_key, sizeof(kp->secret_key), err, errlen);
    if (rc < 0)
        hub_keypair_wipe(kp);
    return rc;
}

int hub_keypair_load(const char *path, hub_keypair_t *kp, char *err, size_t errlen)
{
    if (!path || !kp)
        return CN_EINVAL;
    if (hub_secrets_init() < 0)
        return CN_ECRYPTO;
    int rc = read_private_file(path, kp->secret_key, sizeof(kp->secret_key), err, errlen);
    if (rc < 0) {
        hub_keypair_wipe(kp);
        return rc;
    }
    rc = derive_public(kp);
    if (rc < 0)
        cn_errf(CN_OK, err, errlen, "%s does not hold a usable X25519 key", path);
    return rc;
}

void hub_keypair_wipe(hub_keypair_t *kp)
{
    if (kp)
        sodium_memzero(kp, sizeof(*kp));
}

void hub_key_to_b64(const uint8_t key[static HUB_KEY_BYTES], char out[static HUB_KEY_B64_SIZE])
{
    cn_id_key_to_b64url(key, out);
}
