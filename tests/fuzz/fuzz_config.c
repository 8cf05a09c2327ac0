/* libFuzzer harness for the agent's config parser: the JSON config file
 * (agent_config_load), its "allow" target patterns and the FILE.exposed
 * list (agent_config_load_policy), read from real files in a scratch
 * directory as the CLI reads them.
 *
 * Input: the config file's bytes, then optionally a NUL byte and the bytes
 * of FILE.exposed.
 *
 * Invariants that abort the run:
 * - a failed load says why (a non-empty one-line message) and leaves no
 *   secret behind (token and private key wiped);
 * - a successful load round-trips: agent_config_save() of what was loaded,
 *   loaded again, gives the same fields, and every string is printable
 *   ASCII within its bound;
 * - a loaded policy allows every target FILE.exposed names that parses,
 *   and queries on it never crash. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "allowlist.h"
#include "cn_log.h"
#include "cn_target.h"
#include "cn_err.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/cn-fuzz-config-XXXXXX";
static char cfg_path[64], exposed_path[80], saved_path[64], saved_exposed[80];

static void teardown(void)
{
    unlink(cfg_path);
    unlink(exposed_path);
    unlink(saved_path);
    unlink(saved_exposed);
    rmdir(dir);
}

static void setup(void)
{
    cn_log_set_level(CN_LOG_ERROR);
    if (!mkdtemp(dir))
        abort();
    snprintf(cfg_path, sizeof(cfg_path), "%s/config.json", dir);
    snprintf(exposed_path, sizeof(exposed_path), "%s.exposed", cfg_path);
    snprintf(saved_path, sizeof(saved_path), "%s/saved.json", dir);
    snprintf(saved_exposed, sizeof(saved_exposed), "%s.exposed", saved_path);
    atexit(teardown);
}

static void write_file(const char *path, const uint8_t *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        abort();
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            abort();
        p += w;
        n -= (size_t)w;
    }
    close(fd);
}

static bool all_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

static void check_string(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (n == cap)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            abort();
}

static void check_message(const char *err, size_t cap)
{
    size_t n = strnlen(err, cap);
    if (n == 0 || n == cap || memchr(err, '\n', n))
        abort();
}

static void check_config(void)
{
    agent_config_t a, b;
    char err[512];
    memset(&a, 0, sizeof(a));
    int rc = agent_config_load(cfg_path, &a, err, sizeof(err));
    if (rc < 0) {
        if (rc != CN_EINVAL)
            abort(); /* our own private file: only its content can be wrong */
        check_message(err, sizeof(err));
        if (!all_zero(a.token, sizeof(a.token)) || !all_zero(a.agent_sk, sizeof(a.agent_sk)))
            abort();
        return;
    }
    check_string(a.hub, sizeof(a.hub));
    check_string(a.agent_id, sizeof(a.agent_id));
    check_string(a.workspace_id, sizeof(a.workspace_id));
    check_string(a.token, sizeof(a.token));

    unlink(saved_path);
    if (agent_config_save(saved_path, &a, err, sizeof(err)) < 0)
        abort();
    memset(&b, 0, sizeof(b));
    if (agent_config_load(saved_path, &b, err, sizeof(err)) < 0)
        abort();
    if (strcmp(a.hub, b.hub) || strcmp(a.agent_id, b.agent_id) ||
        strcmp(a.workspace_id, b.workspace_id) || strcmp(a.token, b.token) ||
        a.have_keys != b.have_keys ||
        (a.have_keys && (memcmp(a.agent_sk, b.agent_sk, sizeof(a.agent_sk)) ||
                         memcmp(a.hub_pk, b.hub_pk, sizeof(a.hub_pk)))))
        abort();
    agent_config_wipe(&a);
    agent_config_wipe(&b);
}

static void check_policy(const uint8_t *exposed, size_t n)
{
    agent_policy_t p = {0};
    size_t skipped = 0;
    char err[512];
    int rc = agent_config_load_policy(cfg_path, &p, &skipped, err, sizeof(err));
    if (rc < 0) {
        if (rc != CN_EINVAL && rc != CN_ENOMEM)
            abort();
        check_message(err, sizeof(err));
        agent_policy_free(&p);
        return;
    }
    /* Every well-formed line of FILE.exposed is allowed. */
    char *text = malloc(n + 1);
    if (!text)
        abort();
    memcpy(text, exposed, n);
    text[n] = '\0';
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r')
            line[len - 1] = '\0';
        char host[CN_TARGET_HOST_SIZE];
        uint16_t port;
        if (*line && cn_target_parse(line, CN_TARGET_BARE_PORT, host, &port, NULL) &&
            !agent_policy_allows(&p, host, port))
            abort();
    }
    free(text);
    static const struct {
        const char *host;
        uint16_t port;
    } probes[] = {{"127.0.0.1", 5432}, {"10.1.2.3", 22},     {"169.254.169.254", 80},
                  {"::1", 6379},       {"db.internal", 443}, {"localhost", 1}};
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
        (void)agent_policy_allows(&p, probes[i].host, probes[i].port);
    agent_policy_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!cfg_path[0])
        setup();
    if (size > AGENT_CONFIG_MAX_BYTES)
        return 0;
    const uint8_t *nul = memchr(data, '\0', size);
    size_t cfg_len = nul ? (size_t)(nul - data) : size;
    write_file(cfg_path, data, cfg_len);
    if (nul)
        write_file(exposed_path, nul + 1, size - cfg_len - 1);
    else
        unlink(exposed_path);
    check_config();
    check_policy(nul ? nul + 1 : (const uint8_t *)"", nul ? size - cfg_len - 1 : 0);
    return 0;
}
