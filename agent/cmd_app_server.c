/* `connect app-server`: the local control plane (app_server.h is its core).
 *
 * Threads. The loop thread owns one lws context: the HTTP server of the
 * API and the client connections that POST callbacks. Every tunnel gets a
 * worker thread that does all its blocking work in order: the REST create
 * on the hub, then an agent_daemon link serving only that tunnel (serve =
 * [id], as `connect expose` does), then, once stopped, the REST delete.
 * One link per tunnel, rather than one daemon serving them all, because a
 * daemon's serve list is fixed when its link is made: adding a tunnel to a
 * shared link would mean reconnecting it, cutting every other tunnel's
 * streams; with one link each, a create or a delete touches nothing else,
 * and a hub that refuses one tunnel fails only that one. The daemon owns
 * its own lws context and its service round blocks, so it gets a thread
 * (lws allows one service thread per context; LWS_MAX_SMP is 1).
 *
 * Workers talk to the loop through a locked message queue and
 * lws_cancel_service() (the one lws call allowed from another thread); the
 * loop answers in LWS_CALLBACK_EVENT_WAIT_CANCELLED. No lws callback ever
 * blocks: a create is answered later (deferred), from WRITEABLE, once its
 * worker reports. The loop tells a worker to stop through an atomic flag
 * and agent_daemon_wake().
 *
 * Exit (SIGINT or SIGTERM alike): every worker is told to stop, which
 * closes its link and deletes its tunnel on the hub; the loop keeps
 * running (answering and delivering the "stopped" callbacks) until all
 * workers are done, then gives waiting callbacks a short grace period. */
#include "cli.h"

#include "app_server.h"
#include "cn_api.h"
#include "cn_err.h"
#include "cn_errmsg.h"
#include "cn_hpost.h"
#include "cn_log.h"
#include "cn_pipe.h"
#include "cn_time.h"
#include "cn_target.h"
#include "daemon.h"
#include "plugins.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define HTTP_PROTOCOL "http"
#define LISTEN_PROTOCOL "connect-app-listen"
#define LISTEN_BACKLOG 128
#define ACCEPTS_PER_EVENT 32
#define CALLBACK_PROTOCOL "connect-app-callback"
#define DISCARD_MAX (1024 * 1024) /* 413 bodies read and dropped up to this size */
#define HEADER_BUF 2048
#define TICK_MS 250
#define CALLBACK_TIMEOUT_S 10
#define CALLBACK_GRACE_MS 3000 /* after the last worker, for the "stopped" callbacks */
#define REQUEST_DEADLINE_S 30

typedef struct app app_t;

/* ---- messages from workers ------------------------------------------------ */

enum msg_kind { MSG_CREATED, MSG_CREATE_FAILED, MSG_STATE, MSG_FINISHED };

typedef struct msg {
    struct msg *next;
    enum msg_kind kind;
    char id[CN_ID_UUID_SIZE];
    as_status_t status;
    bool invalid;
    char hub_id[CN_ID_UUID_SIZE];
    int remote_port;
    char url[512];
    char why[512]; /* "" = none */
} msg_t;

/* One tunnel's worker. Created and freed by the loop thread; the thread
 * reads only its own fields and `stop`. */
typedef struct worker {
    struct worker *next;
    app_t *app;
    char id[CN_ID_UUID_SIZE];
    char name[128]; /* "" = let the hub generate one */
    bool http;
    char host[CN_TARGET_HOST_SIZE];
    uint16_t port;
    pthread_t thread;
    bool started;  /* the thread exists (join it) */
    bool finished; /* MSG_FINISHED arrived */
    atomic_int stop;
    pthread_mutex_t d_mu; /* guards d against the loop's wake-up */
    agent_daemon_t *d;
    struct lws *pending; /* the create request waiting for its answer */
    /* worker-thread state */
    bool seen; /* our tunnel was in a list from the hub */
    char hub_status[16];
    char down_why[256];
} worker_t;

struct app {
    agent_common_t c;
    const char *host;
    unsigned long port;
    const char *token;
    agent_config_t cfg;
    as_server_t *as;
    struct lws_context *ctx;
    struct lws_vhost *vh;
    struct lws_protocols protocols[4]; /* http, callbacks, listener, end */
    lws_sorted_usec_list_t tick;
    pthread_mutex_t mu; /* the message queue */
    msg_t *msgs, *msgs_tail;
    pthread_mutex_t cfg_mu; /* the config's exposed-target record */
    worker_t *workers;
    bool exiting;
    cn_api_url_t hub_url;
};

static void post(app_t *app, msg_t *m)
{
    pthread_mutex_lock(&app->mu);
    if (app->msgs_tail)
        app->msgs_tail->next = m;
    else
        app->msgs = m;
    app->msgs_tail = m;
    pthread_mutex_unlock(&app->mu);
    lws_cancel_service(app->ctx);
}

static void post_simple(worker_t *w, enum msg_kind kind, as_status_t st, const char *why)
{
    msg_t *m = calloc(1, sizeof(*m));
    if (!m) {
        cn_log_error("app-server: out of memory, a status change of %s is lost", w->id);
        return;
    }
    m->kind = kind;
    m->status = st;
    snprintf(m->id, sizeof(m->id), "%s", w->id);
    if (why)
        snprintf(m->why, sizeof(m->why), "%s", why);
    post(w->app, m);
}

/* ---- the worker thread ------------------------------------------------------ */

static int worker_force(void *arg)
{
    return cli_force != 0;
}

static void on_down(void *ctx, agent_daemon_t *d, const agent_down_t *down)
{
    worker_t *w = ctx;
    snprintf(w->down_why, sizeof(w->down_why), "link to the hub down: %s",
             down->why ? down->why : cn_strerror(down->err));
}

/* The hub's lastError for the tunnel (a blocking call: between rounds). */
static void hub_last_error(cn_api_t *api, const char *hub_id, char *out, size_t len)
{
    char err[256];
    json_t *t = NULL;
    out[0] = '\0';
    if (cn_api_tunnel_get(api, hub_id, &t, err, sizeof(err)) == 0)
        snprintf(out, len, "%s", jstr(t, "lastError", ""));
    json_decref(t);
}

/* Serves the created tunnel until told to stop or it cannot go on. */
static void worker_serve(worker_t *w, cn_api_t *api, const char *hub_id)
{
    app_t *app = w->app;
    char err[512];
    plugins_t *plugins = cli_plugins(NULL); /* one per thread: plugins.h */
    const char *serve[1] = {hub_id};
    agent_daemon_config_t dc;
    agent_daemon_config_from(&dc, &app->cfg);
    dc.serve = serve;
    dc.nserve = 1;
    dc.plugins = plugins;
    dc.on_down = on_down;
    dc.ctx = w;
    agent_daemon_t *d = agent_daemon_new(&dc, err, sizeof(err));
    if (!d) {
        post_simple(w, MSG_STATE, AS_FAILED, err);
        plugins_free(plugins);
        return;
    }
    pthread_mutex_lock(&w->d_mu);
    w->d = d;
    pthread_mutex_unlock(&w->d_mu);

    as_status_t told = AS_STARTING;
    char told_why[512] = "";
    bool was_connected = false;
    while (!atomic_load(&w->stop)) {
        if (agent_daemon_service(d) < 0) {
            post_simple(w, MSG_STATE, AS_FAILED, "the event loop failed");
            break;
        }
        const agent_tunnel_t *t =
            agent_allowlist_find(agent_daemon_tunnels(d), hub_id, strlen(hub_id));
        bool connected = agent_daemon_connected(d);
        as_status_t st = told;
        char why[512] = "";
        if (connected && !t && w->seen) {
            post_simple(w, MSG_STATE, AS_FAILED, "the tunnel was deleted on the hub");
            break;
        }
        if (t) {
            w->seen = true;
            if (!strcmp(t->status, "expired")) {
                post_simple(w, MSG_STATE, AS_FAILED, "the tunnel expired on the hub");
                break;
            }
        }
        if (connected && t && !strcmp(t->status, "active")) {
            st = AS_RUNNING;
        } else if (connected && t && !strcmp(t->status, "error")) {
            st = AS_UNHEALTHY;
            if (told != AS_UNHEALTHY || strcmp(w->hub_status, "error") != 0)
                hub_last_error(api, hub_id, why, sizeof(why));
            else
                snprintf(why, sizeof(why), "%s", told_why);
            if (!why[0])
                snprintf(why, sizeof(why), "the hub reports the tunnel in error");
        } else if (connected && t && !strcmp(t->status, "paused")) {
            st = AS_UNHEALTHY;
            snprintf(why, sizeof(why), "the tunnel is paused on the hub");
        } else if (!connected && (was_connected || w->down_why[0])) {
            st = AS_UNHEALTHY;
            snprintf(why, sizeof(why), "%s",
                     w->down_why[0] ? w->down_why : "link to the hub down, reconnecting");
        }
        if (t)
            snprintf(w->hub_status, sizeof(w->hub_status), "%s", t->status);
        was_connected = connected;
        if (st != told || strcmp(why, told_why) != 0) {
            post_simple(w, MSG_STATE, st, why[0] ? why : NULL);
            told = st;
            snprintf(told_why, sizeof(told_why), "%s", why);
        }
    }
    pthread_mutex_lock(&w->d_mu);
    w->d = NULL;
    pthread_mutex_unlock(&w->d_mu);
    agent_daemon_shutdown(d, AGENT_DAEMON_DRAIN_MS, &cli_force);
    plugins_free(plugins); /* after the daemon that borrowed it */
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    app_t *app = w->app;
    char err[512], hub_id[CN_ID_UUID_SIZE] = "";
    json_t *created = NULL;
    const char *finished_why = NULL;
    char why_buf[600];
    cn_api_t *api = cn_api_new(app->cfg.hub, app->cfg.token, err, sizeof(err));
    if (!api || cn_api_set_ca_file(api, app->cfg.ca_file, err, sizeof(err)) < 0) {
        msg_t *m = calloc(1, sizeof(*m));
        if (m) {
            m->kind = MSG_CREATE_FAILED;
            snprintf(m->id, sizeof(m->id), "%s", w->id);
            snprintf(m->why, sizeof(m->why), "%s", err);
            post(app, m);
        }
        cn_api_free(api);
        return NULL;
    }
    cn_api_set_allow_insecure(api, app->cfg.allow_insecure);
    /* A create is never cut short by a first Ctrl-C: the tunnel it makes
     * must be known to be deleted. */
    cn_api_set_cancel(api, worker_force, NULL);

    pthread_mutex_lock(&app->cfg_mu);
    int rc = agent_config_record_exposed(app->cfg.path, w->host, w->port, err, sizeof(err));
    pthread_mutex_unlock(&app->cfg_mu);
    json_t *spec = NULL;
    if (rc == 0) {
        spec = json_pack("{s:{s:s,s:i},s:s,s:b,s:s}", "target", "host", w->host, "port",
                         (int)w->port, "agentId", app->cfg.agent_id, "public", 1, "protocol",
                         w->http ? "http" : "tcp");
        if (spec && w->name[0])
            json_object_set_new(spec, "name", json_string(w->name));
        rc = spec ? cn_api_tunnel_create(api, spec, &created, err, sizeof(err)) : CN_ENOMEM;
        json_decref(spec);
    }
    msg_t *m = calloc(1, sizeof(*m));
    if (!m) {
        cn_log_error("app-server: out of memory");
        rc = rc < 0 ? rc : CN_ENOMEM;
    } else {
        snprintf(m->id, sizeof(m->id), "%s", w->id);
    }
    if (rc == 0 && !cn_id_is_uuid(jstr(created, "id", ""))) {
        rc = CN_EPROTO;
        snprintf(err, sizeof(err), "the hub answered without a tunnel id");
    }
    if (rc < 0) {
        if (m) {
            m->kind = MSG_CREATE_FAILED;
            /* 400/409/422 from the hub: the request was at fault. */
            m->invalid = rc == CN_EINVAL || rc == CN_ESTATE;
            snprintf(m->why, sizeof(m->why), "%s", err);
            post(app, m);
        }
        json_decref(created);
        cn_api_free(api);
        return NULL;
    }
    snprintf(hub_id, sizeof(hub_id), "%s", jstr(created, "id", ""));
    if (m) {
        m->kind = MSG_CREATED;
        snprintf(m->hub_id, sizeof(m->hub_id), "%s", hub_id);
        json_t *port = json_object_get(created, "hubPort");
        if (w->http) {
            snprintf(m->url, sizeof(m->url), "%s", jstr(created, "publicUrl", ""));
        } else if (json_is_integer(port)) {
            m->remote_port = (int)json_integer_value(port);
            bool v6 = app->hub_url.ipv6;
            snprintf(m->url, sizeof(m->url), "tcp://%s%s%s:%d", v6 ? "[" : "", app->hub_url.host,
                     v6 ? "]" : "", m->remote_port);
        }
        post(app, m);
    }
    json_decref(created);

    if (!atomic_load(&w->stop))
        worker_serve(w, api, hub_id);

    rc = cn_api_tunnel_delete(api, hub_id, NULL, err, sizeof(err));
    if (rc < 0 && rc != CN_ENOTFOUND) {
        snprintf(why_buf, sizeof(why_buf), "could not delete the tunnel on the hub: %s", err);
        finished_why = why_buf;
        cn_log_warn("app-server: tunnel %s: %s (remove it with 'connect rm %s')", w->id, why_buf,
                    hub_id);
    } else {
        cn_log_info("app-server: tunnel %s: deleted on the hub (%s)", w->id, hub_id);
    }
    post_simple(w, MSG_FINISHED, AS_STOPPED, finished_why);
    cn_api_free(api);
    return NULL;
}

/* ---- workers, from the loop thread -------------------------------------------- */

static worker_t *worker_find(app_t *app, const char *id)
{
    for (worker_t *w = app->workers; w; w = w->next)
        if (!strcmp(w->id, id))
            return w;
    return NULL;
}

static void worker_stop(void *ctx, const char *id)
{
    worker_t *w = worker_find(ctx, id);
    if (!w)
        return;
    atomic_store(&w->stop, 1);
    pthread_mutex_lock(&w->d_mu);
    if (w->d)
        agent_daemon_wake(w->d);
    pthread_mutex_unlock(&w->d_mu);
}

static int worker_start(app_t *app, const char *id)
{
    as_tunnel_spec_t spec;
    if (as_tunnel_spec(app->as, id, &spec) < 0)
        return CN_ENOTFOUND;
    worker_t *w = calloc(1, sizeof(*w));
    if (!w)
        return CN_ENOMEM;
    w->app = app;
    snprintf(w->id, sizeof(w->id), "%s", id);
    snprintf(w->name, sizeof(w->name), "%s", spec.name ? spec.name : "");
    w->http = spec.http;
    snprintf(w->host, sizeof(w->host), "%s", spec.host);
    w->port = spec.port;
    atomic_init(&w->stop, 0);
    pthread_mutex_init(&w->d_mu, NULL);
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        pthread_mutex_destroy(&w->d_mu);
        free(w);
        return CN_EIO;
    }
    w->started = true;
    w->next = app->workers;
    app->workers = w;
    return 0;
}

static void worker_reap(app_t *app, worker_t *w)
{
    for (worker_t **p = &app->workers; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    if (w->started)
        pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->d_mu);
    free(w);
}

/* ---- the HTTP server ------------------------------------------------------- */

enum phase { PH_IDLE = 0, PH_BODY, PH_DISCARD, PH_DEFERRED, PH_READY, PH_CLOSING };

typedef struct session {
    enum phase phase;
    char method[8];
    char path[256];
    char tunnel_arg[64];
    bool has_tunnel_arg;
    char *auth;
    char *body;
    size_t body_len, body_cap; /* body_cap: the Content-Length */
    time_t started;
    char waiting_for[CN_ID_UUID_SIZE]; /* PH_DEFERRED: the tunnel being created */
    /* the answer */
    int status;
    char *resp;
    size_t resp_len;
    const char *allow;
    bool close;
} session_t;

static void session_reset(session_t *s)
{
    if (s->auth) {
        sodium_memzero(s->auth, strlen(s->auth));
        free(s->auth);
    }
    free(s->body);
    free(s->resp);
    memset(s, 0, sizeof(*s));
}

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    default:
        return status >= 500 ? "Internal Server Error" : "Status";
    }
}

/* Takes the answer's JSON (consumed) into the session. */
static void session_answer(session_t *s, int status, json_t *body, const char *allow)
{
    free(s->resp);
    s->resp = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    s->status = status;
    s->allow = allow;
    if (!s->resp) {
        s->status = 500;
        s->resp = strdup("{\"message\":\"internal error\"}");
    }
    s->resp_len = s->resp ? strlen(s->resp) : 0;
}

static void session_message(session_t *s, int status, const char *msg)
{
    session_answer(s, status, json_pack("{s:s}", "message", msg), NULL);
}

static int add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                      unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value), p, end);
}

/* Writes the answer in one lws_write and ends the transaction (or the
 * connection). What the lws callback returns. */
static int respond(struct lws *wsi, session_t *s)
{
    if (!s->resp)
        return -1;
    size_t cap = LWS_PRE + HEADER_BUF + s->resp_len;
    unsigned char *buf = malloc(cap);
    if (!buf)
        return -1;
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + LWS_PRE + HEADER_BUF - 1;
    char line[64];
    /* Our own status line: lws 4.1 leaves some reason phrases empty. */
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s", s->status, reason(s->status));
    int bad =
        lws_add_http_header_by_name(wsi, NULL, (unsigned char *)line, n, &p, end) ||
        add_header(wsi, "content-type:", "application/json", &p, end) ||
        lws_add_http_header_content_length(wsi, s->resp_len, &p, end) ||
        add_header(wsi, "cache-control:", "no-store", &p, end) ||
        (s->allow && add_header(wsi, "allow:", s->allow, &p, end)) ||
        (s->status == 401 &&
         add_header(wsi, "www-authenticate:", "Bearer realm=\"connect-app-server\"", &p, end)) ||
        (s->close && add_header(wsi, "connection:", "close", &p, end)) ||
        lws_finalize_http_header(wsi, &p, end);
    if (bad) {
        free(buf);
        return -1;
    }
    if (strcmp(s->method, "HEAD") != 0) {
        memcpy(p, s->resp, s->resp_len);
        p += s->resp_len;
    }
    size_t len = (size_t)(p - start);
    int w = lws_write(wsi, start, len, LWS_WRITE_HTTP);
    free(buf);
    cn_log_debug("app-server: %s %s -> %d", s->method, s->path, s->status);
    bool close = s->close;
    session_reset(s);
    if (w < (int)len)
        return -1;
    if (close) {
        if (!lws_partial_buffered(wsi))
            return -1;
        s->phase = PH_CLOSING;
        lws_callback_on_writable(wsi);
        return 0;
    }
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static void method_of(struct lws *wsi, session_t *s)
{
    static const struct {
        enum lws_token_indexes token;
        const char *name;
    } methods[] = {
        {WSI_TOKEN_GET_URI, "GET"},         {WSI_TOKEN_POST_URI, "POST"},
        {WSI_TOKEN_PUT_URI, "PUT"},         {WSI_TOKEN_PATCH_URI, "PATCH"},
        {WSI_TOKEN_DELETE_URI, "DELETE"},   {WSI_TOKEN_HEAD_URI, "HEAD"},
        {WSI_TOKEN_OPTIONS_URI, "OPTIONS"},
    };
    snprintf(s->method, sizeof(s->method), "OTHER");
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (lws_hdr_total_length(wsi, methods[i].token) > 0) {
            snprintf(s->method, sizeof(s->method), "%s", methods[i].name);
            return;
        }
}

/* Runs the core on the complete request and answers, now or (a create)
 * once its worker reports. */
static int dispatch(struct lws *wsi, app_t *app, session_t *s)
{
    as_request_t req = {
        .method = s->method,
        .path = s->path,
        .tunnel_id_arg = s->has_tunnel_arg ? s->tunnel_arg : NULL,
        .authorization = s->auth,
        .body = s->body,
        .body_len = s->body_len,
    };
    as_answer_t a;
    as_handle(app->as, &req, cn_time_wall_ms(), &a);
    if (a.action == AS_ACT_START) {
        int rc = app->exiting ? CN_ESTATE : worker_start(app, a.tunnel_id);
        if (rc < 0) {
            as_answer_t f;
            as_tunnel_create_failed(
                app->as, a.tunnel_id, false,
                rc == CN_ESTATE ? "the app-server is stopping" : "cannot start a worker", &f);
            session_answer(s, f.status, f.body, NULL);
            f.body = NULL;
            as_answer_clear(&f);
            as_answer_clear(&a);
            return respond(wsi, s);
        }
        worker_t *w = worker_find(app, a.tunnel_id);
        w->pending = wsi;
        snprintf(s->waiting_for, sizeof(s->waiting_for), "%s", a.tunnel_id);
        s->phase = PH_DEFERRED;
        /* The hub answers within cn_api's deadline (15 s); lws's own idle
         * timeout must not cut the wait short meanwhile. */
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, 2 * CN_API_DEFAULT_TIMEOUT_MS / 1000);
        as_answer_clear(&a);
        return 0;
    }
    if (a.action == AS_ACT_STOP)
        worker_stop(app, a.tunnel_id);
    if (!a.body)
        session_message(s, 500, "internal error");
    else
        session_answer(s, a.status, a.body, a.allow);
    a.body = NULL;
    as_answer_clear(&a);
    return respond(wsi, s);
}

static bool parse_length(const char *t, long long *out)
{
    size_t n = strlen(t);
    if (n == 0 || n > 18)
        return false;
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i] < '0' || t[i] > '9')
            return false;
        v = v * 10 + (t[i] - '0');
    }
    *out = v;
    return true;
}

static int on_http(struct lws *wsi, app_t *app, session_t *s, const char *uri)
{
    session_reset(s);
    s->started = time(NULL);
    method_of(wsi, s);
    /* No route is this long: a path that does not fit answers 404. */
    snprintf(s->path, sizeof(s->path), "%s",
             !uri                            ? "/"
             : strlen(uri) < sizeof(s->path) ? uri
                                             : "/(too long)");
    char arg[96];
    const char *v = lws_get_urlarg_by_name(wsi, "tunnel_id=", arg, (int)sizeof(arg));
    if (v) {
        s->has_tunnel_arg = true;
        snprintf(s->tunnel_arg, sizeof(s->tunnel_arg), "%s", v);
    }
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n > 0) {
        s->auth = malloc((size_t)n + 1);
        if (!s->auth || lws_hdr_copy(wsi, s->auth, n + 1, WSI_TOKEN_HTTP_AUTHORIZATION) < 0)
            return -1;
    }
    bool body_method =
        !strcmp(s->method, "POST") || !strcmp(s->method, "PUT") || !strcmp(s->method, "PATCH");
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
        s->close = true;
        session_message(s, 411, "request bodies need a Content-Length (no chunked encoding)");
        return respond(wsi, s);
    }
    long long clen = 0;
    bool has_clen = false;
    char num[32];
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
        if (lws_hdr_copy(wsi, num, sizeof(num), WSI_TOKEN_HTTP_CONTENT_LENGTH) < 0 ||
            !parse_length(num, &clen)) {
            s->close = true;
            session_message(s, 400, "invalid Content-Length");
            return respond(wsi, s);
        }
        has_clen = true;
    }
    if (body_method && !has_clen) {
        /* No length: no body (RFC 9112 6.3), but lws would wait for one. */
        s->close = true;
        return dispatch(wsi, app, s);
    }
    bool expect_continue = false;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_EXPECT) > 0 &&
        lws_hdr_copy(wsi, num, sizeof(num), WSI_TOKEN_HTTP_EXPECT) > 0)
        expect_continue = !strcasecmp(num, "100-continue");
    if (clen > AS_MAX_BODY) {
        if (expect_continue || clen > DISCARD_MAX) {
            s->close = true;
            session_message(s, 413, "request body is larger than 65536 bytes");
            return respond(wsi, s);
        }
        s->phase = PH_DISCARD;
        return 0;
    }
    if (clen > 0) {
        s->body = malloc((size_t)clen + 1);
        if (!s->body)
            return -1;
        s->body_cap = (size_t)clen;
        s->phase = PH_BODY;
        if (expect_continue) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            unsigned char buf[LWS_PRE + sizeof(cont)];
            memcpy(buf + LWS_PRE, cont, sizeof(cont) - 1);
            if (lws_write(wsi, buf + LWS_PRE, sizeof(cont) - 1, LWS_WRITE_HTTP_HEADERS) < 0)
                return -1;
        }
        return 0;
    }
    if (!strcmp(s->method, "POST") && has_clen) {
        /* lws reports an explicitly empty POST body as BODY + COMPLETION. */
        s->phase = PH_BODY;
        return 0;
    }
    return dispatch(wsi, app, s);
}

static int on_body(session_t *s, const void *in, size_t len)
{
    if (s->phase != PH_BODY && s->phase != PH_DISCARD)
        return 0;
    if (time(NULL) - s->started > REQUEST_DEADLINE_S)
        return -1;
    if (s->phase == PH_DISCARD || !len)
        return 0;
    if (!s->body || len > s->body_cap - s->body_len) {
        s->phase = PH_DISCARD; /* more than its Content-Length said */
        return 0;
    }
    memcpy(s->body + s->body_len, in, len);
    s->body_len += len;
    return 0;
}

/* ---- the loop: worker messages ------------------------------------------------ */

/* Hands a deferred create its answer and wakes its connection. */
static void answer_pending(worker_t *w, as_answer_t *a)
{
    struct lws *wsi = w->pending;
    w->pending = NULL;
    if (!wsi)
        return; /* the client went away */
    session_t *s = lws_wsi_user(wsi);
    if (!s || s->phase != PH_DEFERRED)
        return;
    session_answer(s, a->status, a->body, NULL);
    a->body = NULL;
    s->close = true; /* answered from WRITEABLE: no pipelined request may follow */
    s->phase = PH_READY;
    lws_callback_on_writable(wsi);
}

static void drain_messages(app_t *app)
{
    pthread_mutex_lock(&app->mu);
    msg_t *m = app->msgs;
    app->msgs = app->msgs_tail = NULL;
    pthread_mutex_unlock(&app->mu);
    while (m) {
        msg_t *next = m->next;
        worker_t *w = worker_find(app, m->id);
        int64_t wall = cn_time_wall_ms(), mono = (int64_t)cn_time_mono_ms();
        as_answer_t a;
        memset(&a, 0, sizeof(a));
        switch (m->kind) {
        case MSG_CREATED:
            as_tunnel_created(app->as, m->id, m->hub_id, m->url[0] ? m->url : NULL, m->remote_port,
                              wall, &a);
            cn_log_info("app-server: tunnel %s: created on the hub (%s) %s", m->id, m->hub_id,
                        m->url);
            if (w)
                answer_pending(w, &a);
            break;
        case MSG_CREATE_FAILED:
            cn_log_warn("app-server: tunnel %s: the hub did not create it: %s", m->id, m->why);
            as_tunnel_create_failed(app->as, m->id, m->invalid, m->why, &a);
            if (w) {
                answer_pending(w, &a);
                worker_reap(app, w);
            }
            break;
        case MSG_STATE:
            as_tunnel_state(app->as, m->id, m->status, m->why[0] ? m->why : NULL, wall, mono);
            break;
        case MSG_FINISHED:
            as_tunnel_finished(app->as, m->id, m->why[0] ? m->why : NULL, wall, mono);
            if (w)
                worker_reap(app, w);
            break;
        }
        as_answer_clear(&a);
        free(m);
        m = next;
    }
}

/* ---- callbacks ---------------------------------------------------------------- */

/* One callback POST in flight; freed when its cn_hpost is done. */
typedef struct delivery {
    app_t *app;
    uint64_t seq;
    char url_text[AS_CALLBACK_URL_MAX + 1];
} delivery_t;

static void delivery_done(void *user, int status, const char *error)
{
    delivery_t *dl = user;
    uint32_t retry = 0;
    char why[48];
    if (!error) {
        snprintf(why, sizeof(why), "HTTP %d", status);
        error = why;
    }
    bool ok = status >= 200 && status < 300;
    bool over = as_callback_done(dl->app->as, dl->seq, ok, (int64_t)cn_time_mono_ms(),
                                 randombytes_random(), &retry);
    if (ok)
        cn_log_info("app-server: callback to %s delivered (HTTP %d)", dl->url_text, status);
    else if (over)
        cn_log_warn("app-server: callback to %s failed: %s; giving up after %d attempts",
                    dl->url_text, error, AS_CALLBACK_ATTEMPTS);
    else
        cn_log_warn("app-server: callback to %s failed: %s; retrying in %u ms", dl->url_text, error,
                    (unsigned)retry);
    free(dl);
}

/* Starts every delivery that is due. */
static void deliver_due(app_t *app)
{
    int64_t now = (int64_t)cn_time_mono_ms();
    as_callback_t *cb;
    while ((cb = as_callback_take(app->as, now, NULL))) {
        delivery_t *dl = calloc(1, sizeof(*dl));
        const char *why = NULL;
        as_url_t url;
        if (!dl || !as_url_parse(cb->url, &url, &why)) { /* checked at create */
            free(dl);
            as_callback_done(app->as, cb->seq, false, now, randombytes_random(), NULL);
            continue;
        }
        dl->app = app;
        dl->seq = cb->seq;
        snprintf(dl->url_text, sizeof(dl->url_text), "%s", cb->url);
        if (!strcasecmp(url.host, "localhost"))
            snprintf(url.host, sizeof(url.host), "127.0.0.1");
        bool v6 = strchr(url.host, ':') != NULL;
        char host[80];
        snprintf(host, sizeof(host), "%s%s%s:%u", v6 ? "[" : "", url.host, v6 ? "]" : "",
                 (unsigned)url.port);
        const char *headers[] = {"content-type:", "application/json",
                                 "user-agent:", "connect-app-server/1", NULL};
        cn_hpost_opts_t o = {
            .ctx = app->ctx,
            .vhost = app->vh,
            .protocol = CALLBACK_PROTOCOL,
            .address = url.host,
            .port = url.port,
            .path = url.path,
            .host = host,
            .headers = headers,
            .body = cb->body,
            .body_len = cb->body_len,
            .timeout_s = CALLBACK_TIMEOUT_S,
            .done = delivery_done,
            .user = dl,
        };
        cn_hpost_t *post;
        char err[96];
        if (cn_hpost_start(&o, &post, err, sizeof(err)) < 0)
            delivery_done(dl, 0, err);
    }
}

/* ---- lws glue -------------------------------------------------------------------- */

static app_t *app_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

static int http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
    session_t *s = user;
    app_t *app = app_of(wsi);
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (app)
            drain_messages(app);
        return 0;
    case LWS_CALLBACK_HTTP:
        if (!s || !app)
            return -1;
        return on_http(wsi, app, s, in);
    case LWS_CALLBACK_HTTP_BODY:
        return s ? on_body(s, in, len) : -1;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (!s || !app)
            return -1;
        if (s->phase == PH_DISCARD) {
            session_message(s, 413, "request body is larger than 65536 bytes");
            return respond(wsi, s);
        }
        if (s->phase != PH_BODY)
            return 0;
        s->phase = PH_IDLE;
        return dispatch(wsi, app, s);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!s)
            return 0;
        if (s->phase == PH_READY)
            return respond(wsi, s);
        return s->phase == PH_CLOSING ? -1 : 0;
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (s && app && s->phase == PH_DEFERRED) {
            worker_t *w = worker_find(app, s->waiting_for);
            if (w && w->pending == wsi)
                w->pending = NULL;
        }
        if (s)
            session_reset(s);
        return 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return 1; /* no WebSocket here */
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static void tick(lws_sorted_usec_list_t *sul)
{
    app_t *app = lws_container_of(sul, app_t, tick);
    drain_messages(app);
    deliver_due(app);
    lws_sul_schedule(app->ctx, 0, &app->tick, tick, TICK_MS * LWS_US_PER_MS);
}

/* ---- the command ----------------------------------------------------------------- */

static bool loopback(const char *host)
{
    struct in_addr four;
    struct in6_addr six;
    if (!strcasecmp(host, "localhost"))
        return true;
    if (inet_pton(AF_INET, host, &four) == 1)
        return (ntohl(four.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &six) == 1)
        return IN6_IS_ADDR_LOOPBACK(&six);
    return false;
}

static int parse_args(app_t *app, int argc, char **argv)
{
    agent_common_t *c = &app->c;
    app->host = "127.0.0.1";
    app->port = 7778;
    const cn_opt_t opts[] = {
        {"host", CN_OPT_STRING, &app->host, 0, 0, "ADDR",
         "address to listen on (default: 127.0.0.1; anything but loopback needs a token)"},
        {"port", CN_OPT_UINT, &app->port, 1, 65535, "N", "port to listen on (default: 7778)"},
        {"token", CN_OPT_STRING, &app->token, 0, 0, "T",
         "bearer token the API requires (default: $CONNECT_APP_SERVER_TOKEN; argv is visible "
         "to other users, so prefer the variable)"},
        {"config", CN_OPT_STRING, &c->config, 0, 0, "FILE",
         "config file (default: $CONNECT_CONFIG, else ~/.config/connect/config.json)"},
        {"hub", CN_OPT_STRING, &c->hub, 0, 0, "URL",
         "hub URL (default: $CONNECT_HUB, else the config)"},
        {"token-file", CN_OPT_STRING, &c->token_file, 0, 0, "FILE",
         "read the hub's API token from FILE (default: $CONNECT_TOKEN, else the config's)"},
        {"ca-file", CN_OPT_STRING, &c->ca_file, 0, 0, "FILE",
         "verify an https hub against these CA certificates (PEM)"},
        {"allow-insecure", CN_OPT_FLAG, &c->allow_insecure, 0, 0, NULL,
         "permit a plain http:// hub that is not on loopback"},
        {"json", CN_OPT_FLAG, &c->json, 0, 0, NULL, "print one JSON line once ready"},
        {"log-level", CN_OPT_CHOICE, &c->log_level, 0, 0, AGENT_LOG_LEVELS,
         "log threshold on stderr (default: $CONNECT_LOG, else info)"},
        CN_OPT_END,
    };
    const cn_args_cmd_t cmd = {
        .prog = "connect",
        .name = "app-server",
        .synopsis = "[--host 127.0.0.1] [--port 7778] [--token T] [--json]",
        .description = "Runs the local control plane for process-owned tunnels: a small HTTP API\n"
                       "(GET /api/v1/health; POST and GET /api/v1/tunnels; GET and DELETE\n"
                       "/api/v1/tunnels/ID; POST /api/v1/tunnels/ID/shutdown; GET /api/v1/events)\n"
                       "that creates tunnels on the hub for this agent and serves them. Its\n"
                       "tunnels end, and are deleted on the hub, when it exits (Ctrl-C or\n"
                       "SIGTERM). It listens on loopback; another address needs a token.\n"
                       "Here --token is the app-server's own token; the hub's API token comes\n"
                       "from --token-file, $CONNECT_TOKEN or the config.",
        .opts = opts,
    };
    int rc = cn_args_front(&cmd, argc, argv, NULL, NULL);
    if (rc != CN_ARGS_OK)
        return cn_args_exit(rc);
    if (!app->token || !*app->token)
        app->token = getenv("CONNECT_APP_SERVER_TOKEN");
    if (app->token && !*app->token)
        app->token = NULL;
    if (!cn_target_host_valid(app->host, NULL))
        return cli_usage_error("app-server", "--host '%s' is not an address", app->host);
    if (!loopback(app->host) && !app->token)
        return cli_fail("app-server: refusing to listen on %s without a token: anyone who can "
                        "reach it could open tunnels (set --token or "
                        "CONNECT_APP_SERVER_TOKEN, or listen on 127.0.0.1)",
                        app->host);
    return -1;
}

/* Accepts on our own listening socket and hands each connection to the
 * HTTP vhost as if lws had accepted it. */
static int listen_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len)
{
    app_t *app = lws_get_opaque_user_data(wsi);
    if (reason != LWS_CALLBACK_RAW_RX_FILE || !app)
        return 0;
    int lfd = lws_get_socket_fd(wsi);
    for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            break;
        if (!lws_adopt_socket_vhost(app->vh, fd)) /* closes fd on failure */
            cn_log_debug("app-server: could not adopt a connection");
    }
    return 0;
}

/* The context, its vhost and the listener. lws 4.1 binds a vhost's port on
 * every interface when given an IPv4 literal (and leaks on failure), so,
 * as the hub does, we bind exactly the address asked for ourselves and
 * fail loudly when we cannot: "loopback only" must mean it. */
static int start_server(app_t *app)
{
    memset(app->protocols, 0, sizeof(app->protocols));
    app->protocols[0].name = HTTP_PROTOCOL;
    app->protocols[0].callback = http_cb;
    app->protocols[0].per_session_data_size = sizeof(session_t);
    app->protocols[1].name = CALLBACK_PROTOCOL;
    app->protocols[1].callback = cn_hpost_callback;
    app->protocols[2].name = LISTEN_PROTOCOL;
    app->protocols[2].callback = listen_cb;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    info.user = app;
    info.max_http_header_data = 8192;
    info.timeout_secs = 10;
    app->ctx = lws_create_context(&info);
    if (!app->ctx)
        return cli_fail("app-server: cannot create the event loop");
    struct lws_context_creation_info vh;
    memset(&vh, 0, sizeof(vh));
    vh.vhost_name = "app-server";
    vh.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    vh.protocols = app->protocols;
    vh.keepalive_timeout = 30;
    vh.alpn = "http/1.1";
    app->vh = lws_create_vhost(app->ctx, &vh);
    if (!app->vh)
        return cli_fail("app-server: cannot create the event loop");
    const char *bind_host = strcasecmp(app->host, "localhost") ? app->host : "127.0.0.1";
    int fd = cn_sock_listen(bind_host, (int)app->port, LISTEN_BACKLOG, NULL);
    if (fd < 0)
        return cli_fail("app-server: cannot listen on %s:%lu: %s", app->host, app->port,
                        fd == CN_EIO ? strerror(errno) : "not a usable address");
    lws_sock_file_fd_type u;
    u.filefd = fd;
    struct lws *lw =
        lws_adopt_descriptor_vhost(app->vh, LWS_ADOPT_RAW_FILE_DESC, u, LISTEN_PROTOCOL, NULL);
    if (!lw) {
        close(fd);
        return cli_fail("app-server: cannot listen on %s:%lu: out of memory", app->host, app->port);
    }
    lws_set_opaque_user_data(lw, app);
    lws_sul_schedule(app->ctx, 0, &app->tick, tick, TICK_MS * LWS_US_PER_MS);
    return -1;
}

static void print_ready(app_t *app)
{
    char url[300];
    bool v6 = strchr(app->host, ':') != NULL;
    snprintf(url, sizeof(url), "http://%s%s%s:%lu", v6 ? "[" : "", app->host, v6 ? "]" : "",
             app->port);
    if (app->c.json) {
        json_t *j = json_pack("{s:s,s:s,s:i,s:s,s:b,s:s}", "url", url, "host", app->host, "port",
                              (int)app->port, "agentId", app->cfg.agent_id, "token",
                              app->token != NULL, "hub", app->cfg.hub);
        out_json(j);
        json_decref(j);
    } else {
        printf("app-server listening on %s (agent %s, hub %s)%s\n", url, app->cfg.agent_id,
               app->cfg.hub, app->token ? ", bearer token required" : "");
        fflush(stdout);
    }
}

static int run(app_t *app)
{
    int status = AGENT_EXIT_OK;
    while (!cli_stop)
        if (lws_service(app->ctx, 0) < 0) {
            status = cli_fail("app-server: the event loop failed");
            break;
        }
    cn_log_info("app-server: stopping %zu tunnel(s)", as_tunnel_count(app->as));
    app->exiting = true;
    drain_messages(app);
    as_stop_all(app->as, cn_time_wall_ms(), worker_stop, app);
    /* Workers close their links and delete their tunnels; the loop keeps
     * answering and delivering meanwhile. A second signal cuts it short
     * (workers see cli_force too). */
    while (app->workers && !cli_force)
        if (lws_service(app->ctx, 0) < 0)
            break;
    uint64_t until = cn_time_mono_ms() + CALLBACK_GRACE_MS;
    while (as_callback_pending(app->as) && cn_time_mono_ms() < until && !cli_force)
        if (lws_service(app->ctx, 0) < 0)
            break;
    while (app->workers) { /* a forced exit: wait for them all the same */
        worker_t *w = app->workers;
        worker_stop(app, w->id);
        worker_reap(app, w);
    }
    return status;
}

int cmd_app_server(int argc, char **argv)
{
    app_t app;
    memset(&app, 0, sizeof(app));
    int status = parse_args(&app, argc, argv);
    if (status >= 0)
        return status;
    cn_api_t *api = NULL;
    status =
        cli_begin(&app.c, AGENT_NEED_AGENT | AGENT_NEED_HUB | AGENT_NEED_TOKEN, &app.cfg, &api);
    if (status >= 0)
        return status;
    cn_api_free(api); /* workers make their own: a client belongs to one thread */
    char err[256];
    if (cn_api_parse_url(app.cfg.hub, &app.hub_url, err, sizeof(err)) < 0) {
        agent_config_wipe(&app.cfg);
        return cli_fail("%s", err);
    }
    as_config_t ac = {.token = app.token};
    app.as = as_new(&ac);
    pthread_mutex_init(&app.mu, NULL);
    pthread_mutex_init(&app.cfg_mu, NULL);
    if (!app.as)
        status = cli_fail("out of memory");
    else
        status = start_server(&app);
    if (status < 0) {
        print_ready(&app);
        status = run(&app);
    }
    if (app.ctx) {
        lws_sul_cancel(&app.tick);
        lws_context_destroy(app.ctx);
    }
    while (app.msgs) {
        msg_t *m = app.msgs;
        app.msgs = m->next;
        free(m);
    }
    as_free(app.as);
    pthread_mutex_destroy(&app.mu);
    pthread_mutex_destroy(&app.cfg_mu);
    agent_config_wipe(&app.cfg);
    if (status == AGENT_EXIT_OK)
        cn_log_info("app-server: stopped");
    return status;
}
