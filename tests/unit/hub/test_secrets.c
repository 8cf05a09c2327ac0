/* secrets: token shape and keyed hashing, Argon2id passwords, UUIDs, and the
 * key files' creation and permission checks. */
#include "hub_test.h"

#include <sodium.h>

#include "cn_err.h"
#include "hub_err.h"
#include "secrets.h"

static void test_token_shape(void **state)
{
    char a[HUB_TOKEN_STR_SIZE], b[HUB_TOKEN_STR_SIZE];
    assert_int_equal(hub_token_generate(HUB_TOKEN_PREFIX_API, a), 0);
    assert_int_equal(hub_token_generate(HUB_TOKEN_PREFIX_API, b), 0);
    assert_int_equal(strlen(a), HUB_TOKEN_STR_LEN);
    assert_memory_equal(a, "cnt_", 4);
    assert_string_not_equal(a, b);
    assert_true(hub_token_well_formed(HUB_TOKEN_PREFIX_API, a));
    assert_false(hub_token_well_formed(HUB_TOKEN_PREFIX_ENROLL, a));

    char e[HUB_TOKEN_STR_SIZE];
    assert_int_equal(hub_token_generate(HUB_TOKEN_PREFIX_ENROLL, e), 0);
    assert_memory_equal(e, "cne_", 4);
    assert_true(hub_token_well_formed(HUB_TOKEN_PREFIX_ENROLL, e));
    assert_int_equal(hub_token_generate("xyz_", e), CN_EINVAL);
}

static void test_token_well_formed_rejects(void **state)
{
    char t[HUB_TOKEN_STR_SIZE + 8];
    assert_int_equal(hub_token_generate(HUB_TOKEN_PREFIX_API, t), 0);
    char bad[sizeof(t)];

    strcpy(bad, t);
    bad[HUB_TOKEN_STR_LEN - 1] = '\0'; /* short */
    assert_false(hub_token_well_formed(HUB_TOKEN_PREFIX_API, bad));

    strcpy(bad, t);
    strcat(bad, "A"); /* long */
    assert_false(hub_token_well_formed(HUB_TOKEN_PREFIX_API, bad));

    strcpy(bad, t);
    bad[10] = '+'; /* not base64url */
    assert_false(hub_token_well_formed(HUB_TOKEN_PREFIX_API, bad));

    /* 43 base64 chars carry 258 bits; the last character's low 2 bits must be
     * zero. Flipping one of them gives a non-canonical spelling. */
    strcpy(bad, t);
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int v = (int)(strchr(alpha, bad[HUB_TOKEN_STR_LEN - 1]) - alpha);
    bad[HUB_TOKEN_STR_LEN - 1] = alpha[v ^ 1];
    assert_false(hub_token_well_formed(HUB_TOKEN_PREFIX_API, bad));

    assert_false(hub_token_well_formed(HUB_TOKEN_PREFIX_API, NULL));
    assert_false(hub_token_well_formed(HUB_TOKEN_PREFIX_API, ""));
    assert_false(hub_token_well_formed(NULL, t));
}

static void test_token_hash(void **state)
{
    uint8_t key[HUB_KEY_BYTES], key2[HUB_KEY_BYTES];
    cn_test_fill(key, sizeof(key), 1);
    cn_test_fill(key2, sizeof(key2), 2);
    char t[HUB_TOKEN_STR_SIZE], u[HUB_TOKEN_STR_SIZE];
    assert_int_equal(hub_token_generate(HUB_TOKEN_PREFIX_API, t), 0);
    assert_int_equal(hub_token_generate(HUB_TOKEN_PREFIX_API, u), 0);

    uint8_t h1[32], h2[32], h3[32], h4[32];
    assert_int_equal(hub_token_hash(key, t, h1), 0);
    assert_int_equal(hub_token_hash(key, t, h2), 0);
    assert_int_equal(hub_token_hash(key2, t, h3), 0);
    assert_int_equal(hub_token_hash(key, u, h4), 0);
    assert_true(hub_hash_equal(h1, h2));  /* deterministic */
    assert_false(hub_hash_equal(h1, h3)); /* keyed */
    assert_false(hub_hash_equal(h1, h4)); /* another token */
    assert_null(memmem(h1, sizeof(h1), t, 32));
    /* The hash is BLAKE2b keyed with the hub key over the whole string. */
    uint8_t ref[32];
    crypto_generichash(ref, 32, (const uint8_t *)t, strlen(t), key, 32);
    assert_memory_equal(ref, h1, 32);
    assert_int_equal(hub_token_hash(key, NULL, h1), CN_EINVAL);
}

static void test_password(void **state)
{
    char pw[HUB_PASSWORD_SIZE], pw2[HUB_PASSWORD_SIZE];
    assert_int_equal(hub_password_generate(pw), 0);
    assert_int_equal(hub_password_generate(pw2), 0);
    assert_int_equal(strlen(pw), HUB_PASSWORD_LEN);
    assert_string_not_equal(pw, pw2);
    for (size_t i = 0; i < HUB_PASSWORD_LEN; i++)
        assert_true((pw[i] >= 'a' && pw[i] <= 'z') || (pw[i] >= 'A' && pw[i] <= 'Z') ||
                    (pw[i] >= '0' && pw[i] <= '9'));

    char hash[HUB_PASSWORD_HASH_SIZE];
    assert_int_equal(hub_password_hash(pw, hash), 0);
    assert_memory_equal(hash, "$argon2id$", 10);
    assert_null(strstr(hash, pw));
    assert_int_equal(hub_password_verify(hash, pw), 0);
    assert_int_equal(hub_password_verify(hash, pw2), CN_EAUTH);
    assert_int_equal(hub_password_verify(hash, ""), CN_EAUTH);
    assert_int_equal(hub_password_verify("not a hash", pw), CN_EAUTH);
    assert_int_equal(hub_password_verify(NULL, pw), CN_EAUTH);
    assert_int_equal(hub_password_hash("", hash), CN_EINVAL);
}

static void test_uuid(void **state)
{
    char a[HUB_UUID_SIZE], b[HUB_UUID_SIZE];
    hub_uuid_v4(a);
    hub_uuid_v4(b);
    assert_string_not_equal(a, b);
    assert_int_equal(strlen(a), 36);
    assert_true(hub_uuid_valid(a));
    assert_int_equal(a[14], '4');
    assert_non_null(strchr("89ab", a[19]));
    assert_true(hub_uuid_valid("0b6b0f3c-8a57-4d35-9c52-6f0e1e2b8c41"));
    assert_false(hub_uuid_valid("0B6B0F3C-8A57-4D35-9C52-6F0E1E2B8C41"));
    assert_false(hub_uuid_valid("0b6b0f3c-8a57-4d35-9c52-6f0e1e2b8c4"));
    assert_false(hub_uuid_valid("0b6b0f3c-8a57-4d35-9c52-6f0e1e2b8c411"));
    assert_false(hub_uuid_valid("0b6b0f3c8a57-4d35-9c52-6f0e1e2b8c41a"));
    assert_false(hub_uuid_valid("../../etc/passwd"));
    assert_false(hub_uuid_valid(""));
    assert_false(hub_uuid_valid(NULL));
}

static void test_secret_key_file(void **state)
{
    char dir[PATH_MAX], path[PATH_MAX + 16], err[512];
    hub_test_tmpdir(dir);
    assert_int_equal(hub_secret_path(dir, "/hub.db" HUB_SECRET_SUFFIX, path, sizeof(path)), 0);

    mode_t old = umask(0); /* the file must be 0600 whatever the umask */
    uint8_t k1[32], k2[32];
    assert_int_equal(hub_secret_key_create(path, k1, err, sizeof(err)), 0);
    umask(old);
    assert_int_equal(hub_test_mode(path), 0600);
    assert_int_equal(hub_secret_key_load(path, k2, err, sizeof(err)), 0);
    assert_memory_equal(k1, k2, 32);

    /* Never overwritten. */
    assert_int_equal(hub_secret_key_create(path, k2, err, sizeof(err)), HUB_ECONFLICT);
    assert_int_equal(hub_secret_key_load(path, k2, err, sizeof(err)), 0);
    assert_memory_equal(k1, k2, 32);

    /* Group/other bits: refused, with a message that says how to fix it. */
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(hub_secret_key_load(path, k2, err, sizeof(err)), CN_EREFUSED);
    assert_non_null(strstr(err, "chmod 600"));
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(hub_secret_key_load(path, k2, err, sizeof(err)), CN_EREFUSED);
    assert_int_equal(chmod(path, 0400), 0);
    assert_int_equal(hub_secret_key_load(path, k2, err, sizeof(err)), 0);

    /* A symlink to a good key file is refused too. */
    char link[PATH_MAX + 16];
    snprintf(link, sizeof(link), "%s/link.secret", dir);
    assert_int_equal(symlink(path, link), 0);
    assert_int_equal(hub_secret_key_load(link, k2, err, sizeof(err)), CN_EREFUSED);

    /* Wrong size, missing file. */
    char shortf[PATH_MAX + 16];
    snprintf(shortf, sizeof(shortf), "%s/short.secret", dir);
    FILE *f = fopen(shortf, "wb");
    assert_non_null(f);
    fputs("0123456789", f);
    fclose(f);
    assert_int_equal(chmod(shortf, 0600), 0);
    assert_int_equal(hub_secret_key_load(shortf, k2, err, sizeof(err)), CN_EINVAL);
    snprintf(shortf, sizeof(shortf), "%s/absent.secret", dir);
    assert_int_equal(hub_secret_key_load(shortf, k2, err, sizeof(err)), CN_ENOTFOUND);
    assert_int_equal(hub_secret_key_create(dir, k2, err, sizeof(err)), HUB_ECONFLICT);

    hub_test_rmtree(dir);
}

static void test_keypair_file(void **state)
{
    char dir[PATH_MAX], path[PATH_MAX + 16], err[512];
    hub_test_tmpdir(dir);
    snprintf(path, sizeof(path), "%s/hub.db%s", dir, HUB_KEYPAIR_SUFFIX);
    hub_keypair_t a, b;
    assert_int_equal(hub_keypair_create(path, &a, err, sizeof(err)), 0);
    assert_int_equal(hub_test_mode(path), 0600);
    assert_int_equal(hub_keypair_load(path, &b, err, sizeof(err)), 0);
    assert_memory_equal(&a, &b, sizeof(a));
    uint8_t pk[32];
    assert_int_equal(crypto_scalarmult_base(pk, a.secret_key), 0);
    assert_memory_equal(pk, a.public_key, 32);
    /* Usable with crypto_kx-style key agreement on the other side. */
    uint8_t zero[32] = {0};
    assert_memory_not_equal(a.public_key, zero, 32);

    char b64[HUB_KEY_B64_SIZE];
    hub_key_to_b64(a.public_key, b64);
    assert_int_equal(strlen(b64), 43);
    assert_null(strpbrk(b64, "+/="));

    assert_int_equal(hub_keypair_create(path, &b, err, sizeof(err)), HUB_ECONFLICT);
    assert_int_equal(chmod(path, 0604), 0);
    assert_int_equal(hub_keypair_load(path, &b, err, sizeof(err)), CN_EREFUSED);
    assert_memory_equal(&b, &(hub_keypair_t){0}, sizeof(b)); /* wiped on failure */
    hub_keypair_wipe(&a);
    hub_keypair_wipe(NULL);
    hub_test_rmtree(dir);
}

static void test_secret_path(void **state)
{
    char out[16];
    assert_int_equal(hub_secret_path("a.db", ".key", out, sizeof(out)), 0);
    assert_string_equal(out, "a.db.key");
    assert_int_equal(hub_secret_path("very-long-name.db", ".secret", out, sizeof(out)), CN_ETOOBIG);
    assert_int_equal(hub_secret_path("", ".key", out, sizeof(out)), CN_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_shape),  cmocka_unit_test(test_token_well_formed_rejects),
        cmocka_unit_test(test_token_hash),   cmocka_unit_test(test_password),
        cmocka_unit_test(test_uuid),         cmocka_unit_test(test_secret_key_file),
        cmocka_unit_test(test_keypair_file), cmocka_unit_test(test_secret_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
