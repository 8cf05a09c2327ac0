/* The embeddable tunnel (tunnel.h): `connect expose` as a library call. One
 * thread per started tunnel does what the command does in its foreground:
 * POST the tunnel, run an agent daemon (daemon.h) that serves only it, watch
 * the hub's tunnel list for its status, and DELETE it at the end. The
 * daemon's callbacks only note what happened; the thread's loop, between
 * two service rounds, turns that into status changes, makes the blocking
 * REST calls and runs the caller's callbacks. */
#include <connect/tunnel.h>

#include "cn_api.h"
#include "cn_err.h"
#include "cn_errmsg.h"
#include "cn_id.h"
#include "cn_log.h"
#include "config.h"
#include "daemon.h"

#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TUNNEL_START_DEFAULT_MS 30000u
#define TUNNEL_DELETE_TIMEOUT_MS 5000u
#define TUNNEL_WHY_MAX 512

/* What the daemon's callbacks saw since the loop last looked. */
typedef struct seen {
    bool listed;     /* our tunnel was in a list from the hub */
    bool gone;       /* ... and then left it: deleted elsewhere */
    bool changed;    /* a new list arrived */
    char status[16]; /* the hub's status for it */
    bool down;       /* the link went down */
    char down_why[TUNNEL_WHY_MAX];
} seen_t;

struct cn_tunnel {
    /* options, copied */
    char host[256];
    char *name, *protocol, *http_user;
    int port;
    unsigned ttl;
    bool private_only;
    cn_tunnel_status_fn on_status;
    void *ctx;
    agent_config_t cfg; /* resolved credentials and identity; wiped by free */

    /* set by start, read by stop and free (one caller thread at a time) */
    bool started, joined;
    pthread_t thread;
    cn_tunnel_ready_fn ready;
    void *ready_ctx;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    agent_daemon_t *daemon; /* mu: for the wake from stop() */
    bool done;              /* mu: the outcome of the start is known */
    int result;             /* mu: ... 0 or CN_E* */
    char why[TUNNEL_WHY_MAX];
    int delete_rc; /* after the join */
    char delete_err[256];

    atomic_int status;
    atomic_bool stop;   /* stop() was called */
    atomic_bool ready_; /* the getters are set (release/acquire) */

    /* thread only until ready_, then fixed */
    char id[AGENT_TUNNEL_ID_LEN + 1];
    char *url, *conn_str, *password;
    int hub_port;
    seen_t seen;
    char last_why[TUNNEL_WHY_MAX]; /* mu: the latest reason, for a timeout message */
};

static char *dup_opt(const char *s, bool *ok)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *ok = false;
    return d;
}

static const char *jget(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

const char *cn_tunnel_status_name(cn_tunnel_status_t status)
{
    switch (status) {
    case CN_TUNNEL_IDLE:
        return "idle";
    case CN_TUNNEL_CONNECTING:
        return "connecting";
    case CN_TUNNEL_ACTIVE:
        return "active";
    case CN_TUNNEL_RECONNECTING:
        return "reconnecting";
    case CN_TUNNEL_PAUSED:
        return "paused";
    case CN_TUNNEL_ERROR:
        return "error";
    }
    return "unknown";
}

cn_tunnel_t *cn_tunnel_new(const cn_tunnel_options_t *o, char *err, size_t errlen)
{
    if (!o) {
        cn_errf(CN_EINVAL, err, errlen, "no options");
        return NULL;
    }
    if (o->local_port < 1 || o->local_port > 65535) {
        cn_errf(CN_EINVAL, err, errlen, "local_port must be between 1 and 65535");
        return NULL;
    }
    const char *host = o->local_host && *o->local_host ? o->local_host : "127.0.0.1";
    if (strlen(host) >= sizeof(((cn_tunnel_t *)0)->host)) {
        cn_errf(CN_EINVAL, err, errlen, "local_host is too long");
        return NULL;
    }
    if (o->name && (!*o->name || strlen(o->name) > AGENT_TUNNEL_NAME_MAX)) {
        cn_errf(CN_EINVAL, err, errlen, "name must be 1-100 characters");
        return NULL;
    }
    cn_tunnel_t *t = calloc(1, sizeof(*t));
    if (!t) {
        cn_errf(CN_ENOMEM, err, errlen, "out of memory");
        return NULL;
    }
    snprintf(t->host, sizeof(t->host), "%s", host);
    t->port = o->local_port;
    t->ttl = o->ttl;
    t->private_only = o->private_only;
    t->on_status = o->on_status;
    t->ctx = o->ctx;
    bool ok = true;
    t->name = dup_opt(o->name, &ok);
    t->protocol = dup_opt(o->protocol && *o->protocol ? o->protocol : "http", &ok);
    t->http_user = dup_opt(o->http_user, &ok);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    atomic_init(&t->status, CN_TUNNEL_IDLE);
    atomic_init(&t->stop, false);
    atomic_init(&t->ready_, false);
    if (!ok) {
        cn_errf(CN_ENOMEM, err, errlen, "out of memory");
        goto fail;
    }
    /* The CLI's resolution: options, then environment, then the file. */
    const agent_common_t c = {
        .config = o->config_path,
        .hub = o->hub_url,
        .token = o->token,
        .ca_file = o->ca_file,
        .allow_insecure = o->allow_insecure,
    };
    if (o->token && !strcmp(o->token, "-")) {
        cn_errf(CN_EINVAL, err, errlen, "token: give the token itself");
        goto fail;
    }
    if (agent_config_resolve(&c, AGENT_NEED_AGENT | AGENT_NEED_HUB | AGENT_NEED_TOKEN, &t->cfg, err,
                             errlen) < 0)
        goto fail;
    return t;
fail:
    cn_tunnel_free(t);
    return NULL;
}

/* ---- the tunnel's thread ------------------------------------------------ */

/* Keeps the latest reason for a timeout message (read by the starter). */
static void note_why(cn_tunnel_t *t, const char *why)
{
    pthread_mutex_lock(&t->mu);
    snprintf(t->last_why, sizeof(t->last_why), "%s", why);
    pthread_mutex_unlock(&t->mu);
}

static void set_status(cn_tunnel_t *t, cn_tunnel_status_t s, const char *why)
{
    if (why)
        note_why(t, why);
    if (atomic_exchange(&t->status, (int)s) == (int)s)
        return;
    cn_log_info("tunnel %s: %s%s%s", t->id[0] ? t->id : "(new)", cn_tunnel_status_name(s),
                why ? ": " : "", why ? why : "");
    if (t->on_status)
        t->on_status(t->ctx, t, s, why);
}

static void on_tunnels(void *ctx, agent_daemon_t *d)
{
    cn_tunnel_t *t = ctx;
    const agent_tunnel_t *it = agent_allowlist_find(agent_daemon_tunnels(d), t->id, strlen(t->id));
    t->seen.changed = true;
    if (!it) {
        if (t->seen.listed)
            t->seen.gone = true;
        return;
    }
    t->seen.listed = true;
    snprintf(t->seen.status, sizeof(t->seen.status), "%s", it->status);
}

static void on_down(void *ctx, agent_daemon_t *d, const agent_down_t *down)
{
    (void)d;
    cn_tunnel_t *t = ctx;
    t->seen.down = true;
    snprintf(t->seen.down_why, sizeof(t->seen.down_why), "%s",
             down->why && *down->why ? down->why : "the link to the hub closed");
}

static int api_cancelled(void *arg)
{
    cn_tunnel_t *t = arg;
    return atomic_load(&t->stop);
}

static int open_api(cn_tunnel_t *t, cn_api_t **out, char *err, size_t errlen)
{
    cn_api_t *api = cn_api_new(t->cfg.hub, t->cfg.token, err, errlen);
    if (!api)
        return CN_EINVAL;
    cn_api_set_allow_insecure(api, t->cfg.allow_insecure);
    int rc = cn_api_set_ca_file(api, t->cfg.ca_file, err, errlen);
    if (rc < 0) {
        cn_api_free(api);
        return rc;
    }
    cn_api_set_cancel(api, api_cancelled, t);
    *out = api;
    return 0;
}

/* POST /api/v1/tunnels for this agent; keeps the id and the password. */
static int create_tunnel(cn_tunnel_t *t, cn_api_t *api, char *err, size_t errlen)
{
    /* This process names the target: record it as this machine's, so the
     * agent-local policy lets the link dial it (as `connect expose`). */
    int rc = agent_config_record_exposed(t->cfg.path, t->host, (uint16_t)t->port, err, errlen);
    if (rc < 0)
        return rc;
    json_t *spec =
        json_pack("{s:{s:s,s:i},s:s,s:b,s:s}", "target", "host", t->host, "port", t->port,
                  "agentId", t->cfg.agent_id, "public", !t->private_only, "protocol", t->protocol);
    if (!spec)
        return cn_errf(CN_ENOMEM, err, errlen, "out of memory");
    if (t->name)
        json_object_set_new(spec, "name", json_string(t->name));
    if (t->ttl)
        json_object_set_new(spec, "ttl", json_integer((json_int_t)t->ttl));
    if (t->http_user)
        json_object_set_new(spec, "httpUser", json_string(t->http_user));
    json_t *created = NULL;
    rc = cn_api_tunnel_create(api, spec, &created, err, errlen);
    json_decref(spec);
    if (rc < 0)
        goto out;
    const char *id = jget(created, "id");
    if (!id || !cn_id_is_uuid(id)) {
        rc = cn_errf(CN_EPROTO, err, errlen, "the hub answered the tunnel creation without an id");
        goto out;
    }
    snprintf(t->id, sizeof(t->id), "%s", id);
    const char *pw = jget(created, "httpPassword");
    if (pw && !(t->password = strdup(pw)))
        rc = cn_errf(CN_ENOMEM, err, errlen, "out of memory");
out:
    json_decref(created);
    return rc;
}

/* The tunnel is active for the first time: read what the hub made of it,
 * publish it to the getters and to whoever waits. */
static int become_ready(cn_tunnel_t *t, cn_api_t *api, char *err, size_t errlen)
{
    json_t *now = NULL;
    int rc = cn_api_tunnel_get(api, t->id, &now, err, errlen);
    if (rc < 0)
        return rc;
    const char *url = jget(now, "publicUrl");
    const char *cs = jget(now, "connectionString");
    json_int_t port = json_integer_value(json_object_get(now, "hubPort"));
    if ((url && *url && !(t->url = strdup(url))) || (cs && *cs && !(t->conn_str = strdup(cs)))) {
        json_decref(now);
        return cn_errf(CN_ENOMEM, err, errlen, "out of memory");
    }
    t->hub_port = port > 0 && port <= 65535 ? (int)port : 0;
    json_decref(now);
    atomic_store_explicit(&t->ready_, true, memory_order_release);
    set_status(t, CN_TUNNEL_ACTIVE, NULL);
    pthread_mutex_lock(&t->mu);
    t->done = true;
    t->result = 0;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    if (t->ready)
        t->ready(t->ready_ctx, t, 0, NULL);
    return 0;
}

/* The hub's lastError for the tunnel, into why. */
static void last_error(cn_tunnel_t *t, cn_api_t *api, char *why, size_t whylen)
{
    char err[256];
    json_t *now = NULL;
    const char *e = NULL;
    if (cn_api_tunnel_get(api, t->id, &now, err, sizeof(err)) == 0)
        e = jget(now, "lastError");
    snprintf(why, whylen, "the hub reports the tunnel in error%s%s", e ? ": " : "", e ? e : "");
    json_decref(now);
}

/* Looks at what the daemon saw. 1 to go on, 0 when the tunnel ended on
 * the hub (why says how), a negative code on failure. */
static int follow(cn_tunnel_t *t, cn_api_t *api, char *why, size_t whylen)
{
    seen_t *s = &t->seen;
    bool ready = atomic_load(&t->ready_);
    if (s->down) {
        s->down = false;
        note_why(t, s->down_why);
        if (ready && !atomic_load(&t->stop))
            set_status(t, CN_TUNNEL_RECONNECTING, s->down_why);
    }
    if (!s->changed)
        return 1;
    s->changed = false;
    if (s->gone) {
        snprintf(why, whylen, "the tunnel was deleted on the hub");
        return 0;
    }
    if (!s->listed)
        return 1;
    if (!strcmp(s->status, "expired")) {
        snprintf(why, whylen, "the tunnel expired");
        return 0;
    }
    if (!strcmp(s->status, "active")) {
        if (!ready) {
            int rc = become_ready(t, api, why, whylen);
            return rc < 0 ? rc : 1;
        }
        set_status(t, CN_TUNNEL_ACTIVE, NULL);
    } else if (!strcmp(s->status, "paused")) {
        set_status(t, CN_TUNNEL_PAUSED, "paused on the hub");
    } else if (!strcmp(s->status, "error")) {
        char e[TUNNEL_WHY_MAX];
        last_error(t, api, e, sizeof(e));
        set_status(t, CN_TUNNEL_ERROR, e);
    }
    return 1;
}

/* Runs the daemon until stop() or the tunnel ends on the hub. 0, or a
 * negative code with why (the tunnel ended, or the loop failed). */
static int serve(cn_tunnel_t *t, cn_api_t *api, char *why, size_t whylen)
{
    const char *serve_ids[1] = {t->id};
    agent_daemon_config_t dc;
    agent_daemon_config_from(&dc, &t->cfg);
    dc.serve = serve_ids;
    dc.nserve = 1;
    dc.on_tunnels = on_tunnels;
    dc.on_down = on_down;
    dc.ctx = t;
    dc.poll_loop = true; /* one tunnel; and no per-event notices in the host's stderr */
    agent_daemon_t *d = agent_daemon_new(&dc, why, whylen);
    if (!d)
        return CN_EIO;
    pthread_mutex_lock(&t->mu);
    t->daemon = d;
    pthread_mutex_unlock(&t->mu);
    int rc = 0;
    while (!atomic_load(&t->stop)) {
        if (agent_daemon_service(d) < 0) {
            rc = cn_errf(CN_EIO, why, whylen, "the tunnel's event loop failed");
            break;
        }
        int f = follow(t, api, why, whylen);
        if (f <= 0) {
            rc = f < 0 ? f : CN_ENOTFOUND;
            break;
        }
    }
    pthread_mutex_lock(&t->mu);
    t->daemon = NULL;
    pthread_mutex_unlock(&t->mu);
    if (agent_daemon_shutdown(d, AGENT_DAEMON_DRAIN_MS, NULL) < 0)
        cn_log_debug("tunnel %s: the link's close did not finish in time", t->id);
    return rc;
}

static void delete_tunnel(cn_tunnel_t *t, cn_api_t *api)
{
    /* The stop flag cancels calls; this one must run. */
    cn_api_set_cancel(api, NULL, NULL);
    cn_api_set_timeout(api, TUNNEL_DELETE_TIMEOUT_MS);
    int rc = cn_api_tunnel_delete(api, t->id, NULL, t->delete_err, sizeof(t->delete_err));
    t->delete_rc = rc == CN_ENOTFOUND ? 0 : rc;
    if (t->delete_rc < 0)
        cn_log_warn("tunnel %s: could not delete it on the hub: %s", t->id, t->delete_err);
}

/* The tunnel whose thread this is (NULL on every other thread): how stop
 * and free recognise a call from a callback, without reading anything the
 * starting thread may still be writing. */
static _Thread_local const cn_tunnel_t *current_tunnel;

static void *tunnel_main(void *arg)
{
    cn_tunnel_t *t = arg;
    current_tunnel = t;
    char why[TUNNEL_WHY_MAX] = "";
    cn_api_t *api = NULL;
    set_status(t, CN_TUNNEL_CONNECTING, NULL);
    int rc = open_api(t, &api, why, sizeof(why));
    if (rc == 0)
        rc = create_tunnel(t, api, why, sizeof(why));
    if (rc == 0 && atomic_load(&t->stop))
        rc = CN_ECLOSED; /* stopped while creating: delete what was made */
    else if (rc == 0)
        rc = serve(t, api, why, sizeof(why));
    if (t->id[0])
        delete_tunnel(t, api);
    cn_api_free(api);

    bool stopped = atomic_load(&t->stop);
    bool was_ready = atomic_load(&t->ready_);
    if (!was_ready && (rc == 0 || (rc == CN_ECLOSED && stopped))) {
        rc = CN_ECLOSED;
        snprintf(why, sizeof(why), "stopped before the tunnel was active");
    }
    if (rc < 0 && !stopped)
        set_status(t, CN_TUNNEL_ERROR, why);
    else
        atomic_store(&t->status, CN_TUNNEL_IDLE);
    pthread_mutex_lock(&t->mu);
    if (!t->done) {
        t->done = true;
        t->result = rc;
        snprintf(t->why, sizeof(t->why), "%s", why);
    }
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    if (!was_ready && t->ready)
        t->ready(t->ready_ctx, t, rc, why);
    return NULL;
}

/* ---- the caller's side -------------------------------------------------- */

static bool on_own_thread(const cn_tunnel_t *t)
{
    return current_tunnel == t;
}

int cn_tunnel_start_async(cn_tunnel_t *t, cn_tunnel_ready_fn ready, void *ctx)
{
    if (!t || t->started)
        return CN_ESTATE;
    t->ready = ready;
    t->ready_ctx = ctx;
    if (pthread_create(&t->thread, NULL, tunnel_main, t) != 0)
        return CN_EIO;
    t->started = true;
    return 0;
}

static void join(cn_tunnel_t *t)
{
    if (!t->started || t->joined)
        return;
    atomic_store(&t->stop, true);
    pthread_mutex_lock(&t->mu);
    if (t->daemon)
        agent_daemon_wake(t->daemon);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    t->joined = true;
}

int cn_tunnel_start(cn_tunnel_t *t, unsigned timeout_ms, char *err, size_t errlen)
{
    if (!t || t->started)
        return cn_errf(CN_ESTATE, err, errlen, "the tunnel was already started");
    int rc = cn_tunnel_start_async(t, NULL, NULL);
    if (rc < 0)
        return cn_errf(rc, err, errlen, "cannot start the tunnel's thread");
    unsigned ms = timeout_ms ? timeout_ms : TUNNEL_START_DEFAULT_MS;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&t->mu);
    int w = 0;
    while (!t->done && w == 0)
        w = pthread_cond_timedwait(&t->cv, &t->mu, &until);
    bool done = t->done;
    rc = t->result;
    pthread_mutex_unlock(&t->mu);
    if (done && rc == 0)
        return 0;
    if (!done) {
        /* Read before the join: the thread's last reason for not being
         * active yet (the status moves on once it is stopped). */
        char why[TUNNEL_WHY_MAX];
        pthread_mutex_lock(&t->mu);
        snprintf(why, sizeof(why), "%s", t->last_why);
        pthread_mutex_unlock(&t->mu);
        join(t);
        return cn_errf(CN_ETIMEOUT, err, errlen, "the tunnel was not active after %u ms%s%s", ms,
                       why[0] ? ": " : "", why);
    }
    join(t);
    return cn_errf(rc, err, errlen, "%s", t->why);
}

int cn_tunnel_stop(cn_tunnel_t *t, char *err, size_t errlen)
{
    if (t && on_own_thread(t)) /* first: `started` is the starting thread's */
        return cn_errf(CN_ESTATE, err, errlen, "cn_tunnel_stop() from the tunnel's own callback");
    if (!t || !t->started)
        return 0;
    bool first = !t->joined;
    join(t);
    if (first && t->delete_rc < 0)
        return cn_errf(t->delete_rc, err, errlen, "could not delete the tunnel on the hub: %s",
                       t->delete_err);
    return 0;
}

void cn_tunnel_free(cn_tunnel_t *t)
{
    if (!t)
        return;
    if (on_own_thread(t)) {
        cn_log_error("cn_tunnel_free() from the tunnel's own callback: ignored (it would wait "
                     "for itself)");
        return;
    }
    join(t);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t->name);
    free(t->protocol);
    free(t->http_user);
    free(t->url);
    free(t->conn_str);
    if (t->password) {
        sodium_memzero(t->password, strlen(t->password));
        free(t->password);
    }
    agent_config_wipe(&t->cfg);
    sodium_memzero(t, sizeof(*t));
    free(t);
}

/* ---- getters -------------------------------------------------------------- */

static bool ready(const cn_tunnel_t *t)
{
    return t && atomic_load_explicit(&((cn_tunnel_t *)t)->ready_, memory_order_acquire);
}

cn_tunnel_status_t cn_tunnel_status(const cn_tunnel_t *t)
{
    return t ? (cn_tunnel_status_t)atomic_load(&((cn_tunnel_t *)t)->status) : CN_TUNNEL_IDLE;
}

const char *cn_tunnel_url(const cn_tunnel_t *t)
{
    return ready(t) ? t->url : NULL;
}

const char *cn_tunnel_id(const cn_tunnel_t *t)
{
    return ready(t) ? t->id : NULL;
}

int cn_tunnel_hub_port(const cn_tunnel_t *t)
{
    return ready(t) ? t->hub_port : 0;
}

const char *cn_tunnel_connection_string(const cn_tunnel_t *t)
{
    return ready(t) ? t->conn_str : NULL;
}

const char *cn_tunnel_http_password(const cn_tunnel_t *t)
{
    return ready(t) ? t->password : NULL;
}
