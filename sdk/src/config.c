/* The config file: safe reading (permissions, owner, size), atomic 0600
 * writing, and the flags > environment > file resolution. */
#include "config.h"

#include "allowlist.h"
#include "cn_api.h"
#include "cn_err.h"
#include "cn_errmsg.h"
#include "cn_target.h"
#include "cn_id.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

int agent_config_path(const char *flag, char *out, size_t outlen, char *err, size_t errlen)
{
    const char *p = flag;
    if (!p || !*p)
        p = getenv("CONNECT_CONFIG");
    if (p && *p) {
        if ((size_t)snprintf(out, outlen, "%s", p) >= outlen)
            return cn_errf(CN_EINVAL, err, errlen, "the config path is too long");
        return 0;
    }
    const char *home = getenv("HOME");
    if (!home || !*home)
        return cn_errf(
            CN_EINVAL, err, errlen,
            "HOME is not set: give the config file with --config FILE or CONNECT_CONFIG");
    if ((size_t)snprintf(out, outlen, "%s/.config/connect/config.json", home) >= outlen)
        return cn_errf(CN_EINVAL, err, errlen, "the config path is too long");
    return 0;
}

void agent_config_wipe(agent_config_t *cfg)
{
    sodium_memzero(cfg->token, sizeof(cfg->token));
    sodium_memzero(cfg->agent_sk, sizeof(cfg->agent_sk));
}

static bool printable(const char *s)
{
    for (; *s; s++)
        if (*s < 0x21 || *s > 0x7e)
            return false;
    return true;
}

/* Copies an optional string member; false (with err) when it is present but
 * not a string, too long or not printable. */
static bool get_str(json_t *doc, const char *key, char *out, size_t outlen, const char *path,
                    char *err, size_t errlen)
{
    json_t *v = json_object_get(doc, key);
    if (!v || json_is_null(v))
        return true;
    const char *s = json_string_value(v);
    if (!s || strlen(s) >= outlen || !printable(s)) {
        cn_errf(CN_EINVAL, err, errlen, "%s: \"%s\" is not a valid value", path, key);
        return false;
    }
    memcpy(out, s, strlen(s) + 1);
    return true;
}

/* Copies an optional path member: any characters but control ones. */
static bool get_path(json_t *doc, const char *key, char *out, size_t outlen, const char *path,
                     char *err, size_t errlen)
{
    json_t *v = json_object_get(doc, key);
    if (!v || json_is_null(v))
        return true;
    const char *s = json_string_value(v);
    bool ok = s && *s && strlen(s) < outlen;
    for (const char *c = s; ok && *c; c++)
        ok = (unsigned char)*c >= 0x20 && *c != 0x7f;
    if (!ok) {
        cn_errf(CN_EINVAL, err, errlen, "%s: \"%s\" is not a valid path", path, key);
        return false;
    }
    memcpy(out, s, strlen(s) + 1);
    return true;
}

/* Reads a private file whole: no symlink, a regular file of ours, no group
 * or other bits, at most AGENT_CONFIG_MAX_BYTES. *text is NUL-terminated;
 * the caller wipes and frees it. CN_ENOTFOUND when missing. */
static int read_private(const char *path, char **text_out, size_t *size_out, char *err,
                        size_t errlen)
{
    int rc = CN_EINVAL;
    char *text = NULL;
    size_t size = 0, got = 0;
    struct stat sb;
    *text_out = NULL;
    *size_out = 0;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return cn_errf(CN_ENOTFOUND, err, errlen, "%s does not exist", path);
        if (errno == ELOOP)
            return cn_errf(CN_EAUTH, err, errlen, "%s is a symbolic link; refusing to read it",
                           path);
        return cn_errf(CN_EIO, err, errlen, "cannot open %s: %s", path, strerror(errno));
    }
    if (fstat(fd, &sb) < 0) {
        rc = cn_errf(CN_EIO, err, errlen, "cannot stat %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = cn_errf(CN_EINVAL, err, errlen, "%s is not a regular file", path);
        goto out;
    }
    if (sb.st_uid != geteuid()) {
        rc =
            cn_errf(CN_EAUTH, err, errlen, "%s belongs to another user; refusing to read it", path);
        goto out;
    }
    if (sb.st_mode & 077) {
        rc = cn_errf(CN_EAUTH, err, errlen,
                     "%s is accessible by group or others (mode %03o); run: chmod 600 %s", path,
                     (unsigned)(sb.st_mode & 0777), path);
        goto out;
    }
    if (sb.st_size > AGENT_CONFIG_MAX_BYTES) {
        rc = cn_errf(CN_EINVAL, err, errlen, "%s is larger than 64 KiB", path);
        goto out;
    }
    size = (size_t)sb.st_size;
    text = malloc(size + 1);
    if (!text) {
        rc = cn_errf(CN_ENOMEM, err, errlen, "out of memory");
        goto out;
    }
    while (got < size) {
        ssize_t n = read(fd, text + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = cn_errf(CN_EIO, err, errlen, "cannot read %s", path);
            goto out;
        }
        got += (size_t)n;
    }
    text[size] = '\0';
    *text_out = text;
    *size_out = size;
    text = NULL;
    rc = 0;
out:
    free(text);
    close(fd);
    return rc;
}

int agent_config_load(const char *path, agent_config_t *cfg, char *err, size_t errlen)
{
    int rc = CN_EINVAL;
    char *text = NULL;
    size_t size = 0;
    json_t *doc = NULL;
    json_error_t jerr;
    char agent_key[64] = "", hub_key[64] = "", why[128];
    cn_api_url_t u;

    rc = read_private(path, &text, &size, err, errlen);
    if (rc < 0)
        return rc;
    doc = json_loadb(text, size, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(doc)) {
        if (doc)
            rc = cn_errf(CN_EINVAL, err, errlen, "%s is not a JSON object", path);
        else
            rc = cn_errf(CN_EINVAL, err, errlen, "%s is not valid JSON (line %d: %s)", path,
                         jerr.line, jerr.text);
        goto out;
    }
    json_t *ver = json_object_get(doc, "version");
    if (ver && (!json_is_integer(ver) || json_integer_value(ver) != 1)) {
        rc = cn_errf(CN_EINVAL, err, errlen, "%s: unsupported config version", path);
        goto out;
    }
    if (!get_str(doc, "hub", cfg->hub, sizeof(cfg->hub), path, err, errlen) ||
        !get_str(doc, "agentId", cfg->agent_id, sizeof(cfg->agent_id), path, err, errlen) ||
        !get_str(doc, "workspaceId", cfg->workspace_id, sizeof(cfg->workspace_id), path, err,
                 errlen) ||
        !get_str(doc, "token", cfg->token, sizeof(cfg->token), path, err, errlen) ||
        !get_str(doc, "agentKey", agent_key, sizeof(agent_key), path, err, errlen) ||
        !get_str(doc, "hubKey", hub_key, sizeof(hub_key), path, err, errlen) ||
        !get_path(doc, "caFile", cfg->ca_file, sizeof(cfg->ca_file), path, err, errlen))
        goto bad;
    json_t *insecure = json_object_get(doc, "allowInsecure");
    if (insecure && !json_is_boolean(insecure)) {
        cn_errf(CN_EINVAL, err, errlen, "%s: \"allowInsecure\" must be true or false", path);
        goto bad;
    }
    cfg->allow_insecure = json_is_true(insecure);
    if (cfg->hub[0] && cn_api_parse_url(cfg->hub, &u, why, sizeof(why)) < 0) {
        cn_errf(CN_EINVAL, err, errlen, "%s: \"hub\": %s", path, why);
        goto bad;
    }
    if (cfg->agent_id[0] && !cn_id_is_uuid(cfg->agent_id)) {
        cn_errf(CN_EINVAL, err, errlen, "%s: \"agentId\" is not a UUID", path);
        goto bad;
    }
    if (agent_key[0] || hub_key[0]) {
        if (cn_id_key_from_b64(agent_key, cfg->agent_sk) < 0) {
            cn_errf(CN_EINVAL, err, errlen, "%s: \"agentKey\" is not a base64 X25519 key", path);
            goto bad;
        }
        if (cn_id_key_from_b64url(hub_key, cfg->hub_pk) < 0) {
            cn_errf(CN_EINVAL, err, errlen, "%s: \"hubKey\" is not a base64url X25519 key", path);
            goto bad;
        }
        cfg->have_keys = true;
    }
    cfg->loaded = true;
    rc = 0;
    goto out;
bad:
    agent_config_wipe(cfg);
    rc = CN_EINVAL;
out:
    sodium_memzero(agent_key, sizeof(agent_key));
    if (text)
        sodium_memzero(text, size);
    json_decref(doc);
    free(text);
    return rc;
}

/* mkdir -p of path's parent directories, each new one 0700. */
static int make_parents(const char *path, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
            return cn_errf(CN_EIO, err, errlen, "cannot create %s: %s", dir, strerror(errno));
        *p = '/';
    }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return cn_errf(CN_EIO, err, errlen, "cannot create %s: %s", dir, strerror(errno));
    return 0;
}

int agent_config_save(const char *path, const agent_config_t *cfg, char *err, size_t errlen)
{
    int rc = CN_EIO, fd = -1;
    char tmp[PATH_MAX + 16], agent_key[45] = "", hub_key[44] = "";
    char *text = NULL;
    json_t *doc = NULL;
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= sizeof(tmp))
        return cn_errf(CN_EINVAL, err, errlen, "the config path is too long");
    if ((rc = make_parents(path, err, errlen)) < 0)
        return rc;
    doc = json_pack("{s:i,s:s}", "version", 1, "hub", cfg->hub);
    if (!doc)
        goto nomem;
    if (cfg->agent_id[0] && json_object_set_new(doc, "agentId", json_string(cfg->agent_id)))
        goto nomem;
    if (cfg->workspace_id[0] &&
        json_object_set_new(doc, "workspaceId", json_string(cfg->workspace_id)))
        goto nomem;
    if (cfg->token[0] && json_object_set_new(doc, "token", json_string(cfg->token)))
        goto nomem;
    if (cfg->have_keys) {
        cn_id_key_to_b64(cfg->agent_sk, agent_key);
        cn_id_key_to_b64url(cfg->hub_pk, hub_key);
        if (json_object_set_new(doc, "agentKey", json_string(agent_key)) ||
            json_object_set_new(doc, "hubKey", json_string(hub_key)))
            goto nomem;
    }
    if (cfg->ca_file[0] && json_object_set_new(doc, "caFile", json_string(cfg->ca_file)))
        goto nomem;
    if (cfg->allow_insecure && json_object_set_new(doc, "allowInsecure", json_true()))
        goto nomem;
    text = json_dumps(doc, JSON_INDENT(2));
    if (!text)
        goto nomem;
    /* mkstemp creates the file 0600 whatever the umask. */
    fd = mkstemp(tmp);
    if (fd < 0) {
        rc = cn_errf(CN_EIO, err, errlen, "cannot create a file beside %s: %s", path,
                     strerror(errno));
        goto out;
    }
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto io;
        off += (size_t)n;
    }
    if (write(fd, "\n", 1) != 1 || fchmod(fd, 0600) < 0 || fsync(fd) < 0)
        goto io;
    if (close(fd) < 0) {
        fd = -1;
        goto io;
    }
    fd = -1;
    if (rename(tmp, path) < 0)
        goto io;
    tmp[0] = '\0';
    rc = 0;
    goto out;
nomem:
    rc = cn_errf(CN_ENOMEM, err, errlen, "out of memory");
    goto out;
io:
    rc = cn_errf(CN_EIO, err, errlen, "cannot write %s: %s", path, strerror(errno));
out:
    if (fd >= 0)
        close(fd);
    if (tmp[0] && rc < 0)
        unlink(tmp);
    if (text) {
        sodium_memzero(text, strlen(text));
        free(text);
    }
    sodium_memzero(agent_key, sizeof(agent_key));
    json_decref(doc);
    return rc;
}

int agent_read_secret(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
    bool is_stdin = !strcmp(path, "-");
    const char *what = is_stdin ? "standard input" : path;
    FILE *f = is_stdin ? stdin : fopen(path, "r");
    if (!f)
        return cn_errf(CN_EIO, err, errlen, "cannot read %s: %s", path, strerror(errno));
    char line[1024];
    bool got = fgets(line, sizeof(line), f) != NULL;
    if (!is_stdin)
        fclose(f);
    int rc = 0;
    char *p = line, *end;
    if (!got) {
        rc = cn_errf(CN_EINVAL, err, errlen, "no token in %s", what);
        goto out;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    end = p + strlen(p);
    while (end > p && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
        *--end = '\0';
    if (!*p)
        rc = cn_errf(CN_EINVAL, err, errlen, "no token in %s", what);
    else if ((size_t)(end - p) >= outlen || !printable(p))
        rc = cn_errf(CN_EINVAL, err, errlen, "the token in %s is not valid", what);
    else
        memcpy(out, p, (size_t)(end - p) + 1);
out:
    sodium_memzero(line, sizeof(line));
    return rc;
}

bool agent_config_same_hub(const char *a, const char *b)
{
    cn_api_url_t ua, ub;
    if (!a || !b || cn_api_parse_url(a, &ua, NULL, 0) < 0 || cn_api_parse_url(b, &ub, NULL, 0) < 0)
        return false;
    return ua.tls == ub.tls && ua.port == ub.port && !strcasecmp(ua.host, ub.host) &&
           !strcmp(ua.base, ub.base);
}

int agent_config_resolve(const agent_common_t *c, unsigned need, agent_config_t *cfg, char *err,
                         size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    int rc = agent_config_path(c->config, cfg->path, sizeof(cfg->path), err, errlen);
    if (rc < 0)
        return rc;
    const char *hub = c->hub && *c->hub ? c->hub : getenv("CONNECT_HUB");
    const char *token = c->token && *c->token ? c->token : getenv("CONNECT_TOKEN");
    char given[AGENT_TOKEN_MAX + 1] = "";
    if (c->token && c->token_file)
        return cn_errf(CN_EINVAL, err, errlen, "give --token or --token-file, not both");
    if (c->token_file || (c->token && !strcmp(c->token, "-"))) {
        rc = agent_read_secret(c->token_file ? c->token_file : "-", given, sizeof(given), err,
                               errlen);
        if (rc < 0)
            return rc;
        token = given;
    }
    if (hub && !*hub)
        hub = NULL;
    if (token && !*token)
        token = NULL;
    bool want_file = (need & AGENT_NEED_AGENT) || ((need & AGENT_NEED_HUB) && !hub) ||
                     ((need & AGENT_NEED_TOKEN) && !token);
    if (want_file) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s", cfg->path);
        rc = agent_config_load(path, cfg, err, errlen);
        if (rc < 0 && rc != CN_ENOTFOUND)
            return rc;
        snprintf(cfg->path, sizeof(cfg->path), "%s", path);
    }
    if (hub) {
        if (strlen(hub) > AGENT_URL_MAX)
            return cn_errf(CN_EINVAL, err, errlen, "the hub URL is too long");
        /* The file's token was issued by its hub: never send it to
         * another one (nor trust another with its CA or consent). */
        if (cfg->hub[0] && !agent_config_same_hub(cfg->hub, hub)) {
            snprintf(cfg->other_hub, sizeof(cfg->other_hub), "%s", cfg->hub);
            sodium_memzero(cfg->token, sizeof(cfg->token));
            cfg->ca_file[0] = '\0';
            cfg->allow_insecure = false;
        }
        snprintf(cfg->hub, sizeof(cfg->hub), "%s", hub);
    }
    const char *ca = c->ca_file && *c->ca_file ? c->ca_file : getenv("CONNECT_CA_FILE");
    if (ca && *ca) {
        if (strlen(ca) >= sizeof(cfg->ca_file))
            return cn_errf(CN_EINVAL, err, errlen, "the CA file path is too long");
        snprintf(cfg->ca_file, sizeof(cfg->ca_file), "%s", ca);
    }
    if (c->allow_insecure)
        cfg->allow_insecure = true;
    if (token) {
        if (strlen(token) > AGENT_TOKEN_MAX || !printable(token))
            return cn_errf(CN_EINVAL, err, errlen, "the API token is not valid");
        snprintf(cfg->token, sizeof(cfg->token), "%s", token);
        sodium_memzero(given, sizeof(given));
    }
    if (cfg->hub[0]) {
        cn_api_url_t u;
        char why[128];
        if (cn_api_parse_url(cfg->hub, &u, why, sizeof(why)) < 0)
            return cn_errf(CN_EINVAL, err, errlen, "%s", why);
    }
    if ((need & AGENT_NEED_AGENT) && (!cfg->agent_id[0] || !cfg->have_keys)) {
        agent_config_wipe(cfg);
        return cn_errf(
            CN_ENOTFOUND, err, errlen,
            "no enrolled agent in %s: run 'connect enroll --hub URL --token TOKEN' first",
            cfg->path);
    }
    if ((need & AGENT_NEED_HUB) && !cfg->hub[0]) {
        agent_config_wipe(cfg);
        return cn_errf(CN_ENOTFOUND, err, errlen,
                       "no hub URL: pass --hub URL, set CONNECT_HUB, or run 'connect enroll'");
    }
    if ((need & AGENT_NEED_TOKEN) && !cfg->token[0] && cfg->other_hub[0]) {
        agent_config_wipe(cfg);
        return cn_errf(CN_ENOTFOUND, err, errlen,
                       "no API token for %s: the token in %s was issued by %s and is never sent "
                       "to another hub; pass --token-file FILE or set CONNECT_TOKEN",
                       cfg->hub, cfg->path, cfg->other_hub);
    }
    if ((need & AGENT_NEED_TOKEN) && !cfg->token[0]) {
        agent_config_wipe(cfg);
        return cn_errf(CN_ENOTFOUND, err, errlen,
                       "no API token: pass --token TOKEN, set CONNECT_TOKEN, or run 'connect "
                       "enroll'");
    }
    return 0;
}

/* ---- the agent-local target policy's sources ---------------------------- */

int agent_config_exposed_path(const char *config_path, char *out, size_t outlen)
{
    if ((size_t)snprintf(out, outlen, "%s.exposed", config_path) >= outlen)
        return CN_EINVAL;
    return 0;
}

/* Adds each line of FILE.exposed; counts the malformed ones. */
static int add_exposed_lines(agent_policy_t *p, char *text, size_t *skipped)
{
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char host[CN_TARGET_HOST_SIZE];
        uint16_t port;
        size_t n = strlen(line);
        if (n && line[n - 1] == '\r')
            line[n - 1] = '\0';
        if (!*line)
            continue;
        if (!cn_target_parse(line, CN_TARGET_BARE_PORT, host, &port, NULL)) {
            (*skipped)++;
            continue;
        }
        int rc = agent_policy_add_target(p, host, port);
        if (rc == CN_ENOMEM)
            return rc;
        if (rc < 0)
            (*skipped)++;
    }
    return 0;
}

int agent_config_record_exposed(const char *config_path, const char *host, uint16_t port, char *err,
                                size_t errlen)
{
    char path[PATH_MAX + 16], line[CN_TARGET_TEXT_MAX + 1];
    if (agent_config_exposed_path(config_path, path, sizeof(path)) < 0)
        return cn_errf(CN_EINVAL, err, errlen, "the config path is too long");
    cn_target_format(host, port, line, sizeof(line));
    /* Already recorded? (A concurrent expose of the same target may add a
     * second line; that is harmless.) */
    char *text = NULL;
    size_t size = 0;
    int rc = read_private(path, &text, &size, err, errlen);
    if (rc < 0 && rc != CN_ENOTFOUND)
        return rc;
    if (rc == 0) {
        agent_policy_t p = {0};
        size_t skipped = 0;
        rc = add_exposed_lines(&p, text, &skipped);
        bool known = rc == 0 && agent_policy_allows(&p, host, port);
        agent_policy_free(&p);
        free(text);
        if (rc < 0)
            return cn_errf(rc, err, errlen, "out of memory");
        if (known)
            return 0;
    }
    if ((rc = make_parents(path, err, errlen)) < 0)
        return rc;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return cn_errf(CN_EIO, err, errlen, "cannot write %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_uid != geteuid() ||
        (sb.st_mode & 077)) {
        close(fd);
        return cn_errf(CN_EAUTH, err, errlen,
                       "%s is not a private file of this user; run: chmod 600 %s", path, path);
    }
    /* One write() with O_APPEND: concurrent exposes never interleave. */
    size_t n = strlen(line);
    line[n++] = '\n';
    ssize_t w = write(fd, line, n);
    int e = errno;
    if (close(fd) < 0 || w != (ssize_t)n)
        return cn_errf(CN_EIO, err, errlen, "cannot write %s: %s", path, strerror(w < 0 ? e : EIO));
    return 0;
}

int agent_config_load_policy(const char *config_path, agent_policy_t *out, size_t *skipped,
                             char *err, size_t errlen)
{
    agent_policy_t p = {0};
    char *text = NULL;
    size_t size = 0, bad = 0;
    json_t *doc = NULL;
    char path[PATH_MAX + 16];
    int rc = read_private(config_path, &text, &size, err, errlen);
    if (rc == 0) {
        json_error_t jerr;
        doc = json_loadb(text, size, JSON_REJECT_DUPLICATES, &jerr);
        sodium_memzero(text, size);
        free(text);
        text = NULL;
        json_t *allow = json_object_get(doc, "allow");
        if (!json_is_object(doc)) {
            rc = cn_errf(CN_EINVAL, err, errlen, "%s is not a JSON object", config_path);
            goto out;
        }
        if (allow && !json_is_array(allow)) {
            rc = cn_errf(CN_EINVAL, err, errlen, "%s: \"allow\" must be a list of patterns",
                         config_path);
            goto out;
        }
        size_t i;
        json_t *v;
        json_array_foreach(allow, i, v)
        {
            char why[256];
            const char *pat = json_string_value(v);
            if (!pat) {
                rc = cn_errf(CN_EINVAL, err, errlen, "%s: \"allow\" entry %zu is not a string",
                             config_path, i + 1);
                goto out;
            }
            if ((rc = agent_policy_add(&p, pat, why, sizeof(why))) < 0) {
                cn_errf(rc, err, errlen, "%s: %s", config_path, why);
                goto out;
            }
        }
    } else if (rc != CN_ENOTFOUND) {
        goto out;
    }
    if (agent_config_exposed_path(config_path, path, sizeof(path)) < 0) {
        rc = cn_errf(CN_EINVAL, err, errlen, "the config path is too long");
        goto out;
    }
    rc = read_private(path, &text, &size, err, errlen);
    if (rc == 0) {
        rc = add_exposed_lines(&p, text, &bad);
        if (rc < 0) {
            cn_errf(rc, err, errlen, "out of memory");
            goto out;
        }
    } else if (rc != CN_ENOTFOUND) {
        goto out;
    }
    rc = 0;
    agent_policy_free(out);
    *out = p;
    p = (agent_policy_t){0};
    if (skipped)
        *skipped = bad;
out:
    free(text);
    json_decref(doc);
    agent_policy_free(&p);
    return rc;
}
