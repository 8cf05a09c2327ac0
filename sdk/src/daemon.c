/* The agent daemon: link lifecycle with backoff, the allow-list from the
 * hub's control messages, and one pipe per admitted stream. */
#include "daemon.h"

#include "backoff.h"
#include "cn_api.h"
#include "cn_ctlpage.h"
#include "cn_e2e.h"
#include "config.h"
#include "health.h"
#include "cn_err.h"
#include "cn_errmsg.h"
#include "cn_frame.h"
#include "cn_log.h"
#include "cn_mux.h"
#include "cn_pipe.h"
#include "cn_time.h"
#include "cn_tls.h"
#include "cn_id.h"
#include "cn_udp.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include "cn_loop.h"
#include <libwebsockets.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEARTBEAT_US (250 * LWS_US_PER_MS)
#define HEALTH_TICK_US (10 * LWS_US_PER_MS)
#define PAYLOAD_MAX 4096
#define REACH_PROTOCOL "connect-reach-listen"
#define REACH_BACKLOG 512
#define ACCEPTS_PER_EVENT 64

typedef struct agent_conn agent_conn_t;

/* One stream being served: owned by the daemon's list, freed when its pipe
 * reports done. */
struct agent_conn {
    agent_daemon_t *d;
    cn_pipe_t *pipe;
    uint32_t stream;
    bool dialing;  /* inside cn_pipe_dial() */
    bool finished; /* done fired while dialing */
    bool reaching; /* a local connection of ours to another agent's tunnel (reach) */
    char tunnel_id[AGENT_TUNNEL_ID_LEN + 1];
    agent_conn_t *prev, *next;
    /* "agent 1234abcd tunnel NAME stream N" for logs, allocated to its
     * length: one per connection, and a tunnel may hold 10,000. */
    char label[];
};

/* A zeroed connection carrying `label`, or NULL. */
static agent_conn_t *conn_new(const char *label)
{
    size_t n = strlen(label) + 1;
    agent_conn_t *c = calloc(1, sizeof(*c) + n);
    if (c)
        memcpy(c->label, label, n);
    return c;
}

/* A reach listener: owned by the daemon's list, freed when lws closes it. */
typedef struct agent_reach {
    struct agent_reach *next;
    agent_daemon_t *d;
    struct lws *wsi;
    char tunnel_id[AGENT_TUNNEL_ID_LEN + 1];
    char name[128];
    uint8_t peer_key[32];
    int port;
    unsigned accepted;
} agent_reach_t;

struct agent_daemon {
    agent_daemon_config_t cfg;
    /* The loop lws runs on (cn_loop.h): epoll unless cfg.poll_loop or
     * CONNECT_EVENT_LOOP=poll|uv. poll() scans every socket each turn, so
     * idle streams slowed busy ones. */
    cn_loop_t *loop;
    char hub_url[CN_API_PATH_MAX];
    cn_api_url_t url;
    char host_header[CN_API_HOST_MAX + 16];
    char path[CN_API_PATH_MAX];
    char agent_id[64];
    char who[64]; /* "agent 1234abcd" or "enrollment" */
    uint8_t sk[32], hub_pk[32];
    uint8_t payload[PAYLOAD_MAX];
    size_t payload_len;
    bool enrolling;
    bool serve_none;
    char serve[AGENT_DAEMON_MAX_SERVE][AGENT_TUNNEL_ID_LEN + 1];
    size_t nserve;
    char ca_file[PATH_MAX]; /* "" = the system CA store (https hubs) */
    cn_tls_ctx_t *tls;      /* https hubs: the link's trust configuration */

    struct lws_context *context;
    struct lws_vhost *vh;
    struct lws_protocols protocols[6];
    cn_mux_callbacks_t mux_cb;

    cn_link_t *link;
    bool established; /* channel up on the current link */
    bool admitted;    /* hello received on the current link */
    bool stopping, destroying;
    agent_backoff_t backoff;
    lws_sorted_usec_list_t sul_reconnect, sul_heartbeat;

    agent_allowlist_t tunnels;
    cn_ctlpage_t pages; /* a long tunnel list being gathered on this link */
    char policy_config[PATH_MAX];
    agent_policy_t policy; /* used when policy_config[0] */
    char workspace_id[64];
    agent_conn_t *conns;
    size_t nconns;
    agent_reach_t *reaches;
    cn_udp_listener_t *udp_reaches[AGENT_DAEMON_MAX_SERVE];
    size_t nudp_reaches;
    agent_health_t *health; /* NULL without plugins */
};

static void connect_now(agent_daemon_t *d);

/* ---- pipes ------------------------------------------------------------ */

static void conn_unlink(agent_daemon_t *d, agent_conn_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        d->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    d->nconns--;
}

static void reach_conn_log(const agent_conn_t *c, cn_pipe_t *pipe, int err);

static void conn_done(void *ctx, cn_pipe_t *pipe, int err)
{
    agent_conn_t *c = ctx;
    agent_daemon_t *d = c->d;
    /* up: target -> hub, down: hub -> target */
    unsigned long long up = cn_pipe_bytes_up(pipe), down = cn_pipe_bytes_down(pipe);
    if (c->reaching)
        reach_conn_log(c, pipe, err);
    else if (err == CN_EREFUSED)
        cn_log_info("%s: the target refused the connection", c->label);
    else if (err && err != CN_ECLOSED)
        cn_log_info("%s: closed (%s), %llu bytes to the target, %llu back", c->label,
                    cn_strerror(err), down, up);
    else
        cn_log_info("%s: closed, %llu bytes to the target, %llu back", c->label, down, up);
    if (c->dialing) {
        c->finished = true; /* the dialer frees it when cn_pipe_dial() returns */
        return;
    }
    conn_unlink(d, c);
    free(c);
}

/* Why the hub or the exposing agent refused a reach connection, in words. */
static const char *reach_refusal(uint32_t code)
{
    switch (code) {
    case CN_RST_GONE:
        return "the exposing agent is offline, or the tunnel expired or was deleted";
    case CN_RST_PAUSED:
        return "the tunnel is paused";
    case CN_RST_UNREACHABLE:
        return "the exposing agent cannot reach the target";
    case CN_RST_LIMIT:
        return "a connection limit was reached";
    case CN_RST_PROTOCOL:
        return "the end-to-end handshake failed";
    default:
        return "unknown tunnel, or not allowed";
    }
}

/* One line per reach connection: how it ended. */
static void reach_conn_log(const agent_conn_t *c, cn_pipe_t *pipe, int err)
{
    unsigned long long up = cn_pipe_bytes_up(pipe), down = cn_pipe_bytes_down(pipe);
    if (err == CN_EREFUSED)
        cn_log_warn("%s: connection refused: %s", c->label,
                    reach_refusal(cn_pipe_reset_code(pipe)));
    else if (err == CN_ETIMEOUT)
        cn_log_warn("%s: connection refused: no answer from the hub in time", c->label);
    else if (err && err != CN_ECLOSED)
        cn_log_info("%s: closed (%s), %llu bytes sent, %llu received", c->label, cn_strerror(err),
                    up, down);
    else
        cn_log_info("%s: closed, %llu bytes sent, %llu received", c->label, up, down);
}

/* The reaching agent as the hub vouches for it, from a RELAY stream's
 * metadata {"reach":{"agentId","workspaceId","key"[,"share":true]}}, as
 * "agent ID" or "share ID" (a share redeemer). False when absent or
 * malformed, or from another workspace than ours. */
static bool reach_meta(const agent_daemon_t *d, const uint8_t *meta, size_t len, uint8_t key[32],
                       char *agent, size_t agent_len)
{
    bool ok = false;
    json_t *j = meta && len && len <= 4096 ? json_loadb((const char *)meta, len, 0, NULL) : NULL;
    json_t *r = json_object_get(j, "reach");
    const char *aid = json_string_value(json_object_get(r, "agentId"));
    const char *ws = json_string_value(json_object_get(r, "workspaceId"));
    const char *k = json_string_value(json_object_get(r, "key"));
    if (aid && cn_id_is_uuid(aid) && k && cn_id_key_from_b64url(k, key) == 0 &&
        (!d->workspace_id[0] || (ws && !strcasecmp(ws, d->workspace_id)))) {
        /* A share redeemer: the id is the share's, the key its own. */
        bool share = json_is_true(json_object_get(r, "share"));
        snprintf(agent, agent_len, "%s %s", share ? "share" : "agent", aid);
        ok = true;
    }
    json_decref(j);
    return ok;
}

/* Copies the client address out of the OPEN metadata, for logs only. */
static void meta_client(const uint8_t *meta, size_t len, char *out, size_t outlen)
{
    snprintf(out, outlen, "?");
    if (!meta || !len || len > 4096)
        return;
    json_t *j = json_loadb((const char *)meta, len, 0, NULL);
    const char *s = json_string_value(json_object_get(j, "client"));
    if (s) {
        size_t o = 0;
        for (; *s && o + 1 < outlen && o < 64; s++)
            out[o++] = (*s >= 0x21 && *s <= 0x7e) ? *s : '?';
        out[o] = '\0';
    }
    json_decref(j);
}

/* A printable form of an untrusted stream ref, for logs. */
static void ref_text(const uint8_t *ref, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len && i < 40 && o + 1 < outlen; i++)
        out[o++] = (ref[i] >= 0x21 && ref[i] <= 0x7e) ? (char)ref[i] : '?';
    out[o] = '\0';
}

/* A UDP flow (public, or a reach with its end-to-end layer when
 * reacher_key is set): a connected socket to the target, accepted at once;
 * it frees itself when the stream ends (cn_udp.h). */
static void serve_udp(agent_daemon_t *d, cn_link_t *link, uint32_t id, uint8_t kind,
                      const agent_tunnel_t *t, const uint8_t *reacher_key, const char *reacher,
                      const uint8_t *meta, size_t meta_len)
{
    char client[80], label[256];
    if (kind == CN_KIND_RELAY)
        snprintf(client, sizeof(client), "%.42s (reach)", reacher);
    else
        meta_client(meta, meta_len, client, sizeof(client));
    snprintf(label, sizeof(label), "%s tunnel %s flow %u", d->who, t->name[0] ? t->name : t->id,
             id);
    cn_e2e_config_t e2e = {CN_E2E_RESPONDER, d->sk, reacher_key, t->id};
    int rc = cn_udp_dial(d->vh, link, id, t->host, t->port, reacher_key ? &e2e : NULL, label);
    if (rc < 0) {
        cn_log_warn("%s: cannot open UDP to %s:%u: %s", label, t->host, (unsigned)t->port,
                    cn_strerror(rc));
        cn_mux_reject(cn_link_mux(link), id, CN_RST_UNREACHABLE, "cannot reach the target");
    } else {
        cn_log_info("%s: client %s, UDP to %s:%u", label, client, t->host, (unsigned)t->port);
    }
    cn_link_flush(link);
}

static bool serves(const agent_daemon_t *d, const char *tunnel_id)
{
    for (size_t i = 0; i < d->nserve; i++)
        if (!strcasecmp(d->serve[i], tunnel_id))
            return true;
    return false;
}

static void on_open(void *ctx, uint32_t id, uint8_t kind, const uint8_t *ref, size_t ref_len,
                    const uint8_t *meta, size_t meta_len)
{
    cn_link_t *link = ctx;
    agent_daemon_t *d = cn_link_user(link);
    cn_mux_t *mux = cn_link_mux(link);
    const agent_tunnel_t *t = NULL;
    const char *why = "agent stopping";
    uint32_t code = CN_RST_GONE;
    if (!d->stopping)
        code = agent_allowlist_check(&d->tunnels, kind, ref, ref_len, &t, &why);
    if (!code && (d->serve_none || (d->nserve && !serves(d, t->id)))) {
        code = CN_RST_REFUSED;
        why = "tunnel not served by this link";
        t = NULL;
    }
    /* The hub named the tunnel; this machine decides the target. */
    if (!code && d->policy_config[0] && !agent_policy_allows(&d->policy, t->host, t->port)) {
        code = CN_RST_REFUSED;
        why = AGENT_POLICY_REFUSED;
        t = NULL;
    }
    uint8_t reacher_key[32];
    char reacher[AGENT_TUNNEL_ID_LEN + 8] = "";
    if (!code && kind == CN_KIND_RELAY &&
        !reach_meta(d, meta, meta_len, reacher_key, reacher, sizeof(reacher))) {
        code = CN_RST_REFUSED;
        why = "reach without the reaching agent's key from this workspace";
        t = NULL;
    }
    if (code) {
        char r[48];
        ref_text(ref, ref_len, r, sizeof(r));
        cn_log_warn("%s stream %u: refused (kind %u, ref '%s'): %s", d->who, id, kind, r, why);
        cn_mux_reject(mux, id, code, why);
        cn_link_flush(link);
        return;
    }
    if (!strcmp(t->protocol, "udp")) {
        serve_udp(d, link, id, kind, t, kind == CN_KIND_RELAY ? reacher_key : NULL, reacher, meta,
                  meta_len);
        return;
    }
    char label[256];
    snprintf(label, sizeof(label), "%s tunnel %s stream %u", d->who, t->name[0] ? t->name : t->id,
             id);
    agent_conn_t *c = conn_new(label);
    if (!c) {
        cn_mux_reject(mux, id, CN_RST_INTERNAL, "out of memory");
        cn_link_flush(link);
        return;
    }
    c->d = d;
    c->stream = id;
    memcpy(c->tunnel_id, t->id, sizeof(c->tunnel_id));
    char client[80];
    if (kind == CN_KIND_RELAY)
        snprintf(client, sizeof(client), "%.42s (reach)", reacher);
    else
        meta_client(meta, meta_len, client, sizeof(client));
    cn_log_info("%s: client %s, dialing %s:%u", c->label, client, t->host, (unsigned)t->port);
    size_t credit = 0;
    if (cn_mux_stream_credit(mux, id, &credit) == 0)
        cn_log_debug("%s: the hub's window for this stream: %zu bytes", c->label, credit);

    c->next = d->conns;
    if (d->conns)
        d->conns->prev = c;
    d->conns = c;
    d->nconns++;

    /* A reach stream carries the agents' end-to-end records: only the
     * key the hub vouched for may complete the handshake. */
    cn_e2e_config_t e2e = {CN_E2E_RESPONDER, d->sk, reacher_key, t->id};
    cn_pipe_config_t pc = {.done = conn_done, .ctx = c, .e2e = kind == CN_KIND_RELAY ? &e2e : NULL};
    /* An https target speaks TLS: the edge's requests are re-encrypted to
     * it (a reach client speaks TLS itself, end to end). */
    if (kind != CN_KIND_RELAY && !strcmp(t->protocol, "https")) {
        pc.tls = true;
        pc.tls_ca_file = t->tls_ca_file[0] ? t->tls_ca_file : NULL;
        pc.tls_name = t->tls_name[0] ? t->tls_name : NULL;
        pc.tls_insecure = t->tls_insecure;
        if (t->tls_insecure)
            cn_log_warn("%s: the target's certificate is not verified (tls.insecure)", c->label);
    }
    int err = 0;
    c->dialing = true;
    cn_pipe_t *pipe = cn_pipe_dial(d->vh, link, id, t->host, t->port, &pc, &err);
    c->dialing = false;
    if (!pipe || c->finished) {
        if (!pipe) {
            cn_log_warn("%s: cannot dial %s:%u: %s", c->label, t->host, (unsigned)t->port,
                        cn_strerror(err));
            cn_mux_reject(mux, id, CN_RST_UNREACHABLE, "cannot dial the target");
        }
        conn_unlink(d, c);
        free(c);
    } else {
        c->pipe = pipe;
    }
    cn_link_flush(link);
}

/* Ends the streams of tunnels that left the list or were paused. */
static void prune_conns(agent_daemon_t *d)
{
    agent_conn_t *next;
    for (agent_conn_t *c = d->conns; c; c = next) {
        next = c->next;
        if (!c->pipe || c->reaching)
            continue; /* reach connections end by the hub's word */
        const agent_tunnel_t *t =
            agent_allowlist_find(&d->tunnels, c->tunnel_id, strlen(c->tunnel_id));
        if (t && agent_tunnel_open(t))
            continue;
        cn_log_info("%s: tunnel %s, closing the stream", c->label, t ? "paused" : "removed");
        cn_pipe_abort(c->pipe, t ? CN_RST_PAUSED : CN_RST_GONE);
    }
}

/* ---- control messages ------------------------------------------------- */

/* Re-reads the local policy (an expose may have added a target since);
 * on failure the previous one stays. */
static void reload_policy(agent_daemon_t *d)
{
    char err[512];
    size_t skipped = 0;
    if (agent_config_load_policy(d->policy_config, &d->policy, &skipped, err, sizeof(err)) < 0)
        cn_log_warn("%s: keeping the previous target policy: %s", d->who, err);
    else if (skipped)
        cn_log_warn("%s: ignoring %zu malformed line%s of the exposed-target record", d->who,
                    skipped, skipped == 1 ? "" : "s");
}

/* Tells the hub about listed tunnels this link serves whose target the
 * local policy refuses, so they show "error" rather than a silent RST per
 * connection. Those already in error (or paused, expired) are not told
 * again. */
static void report_refused(agent_daemon_t *d, cn_link_t *link)
{
    for (size_t i = 0; i < d->tunnels.count; i++) {
        const agent_tunnel_t *t = &d->tunnels.items[i];
        if ((d->nserve && !serves(d, t->id)) || !agent_tunnel_open(t) ||
            !strcmp(t->status, "error") || agent_policy_allows(&d->policy, t->host, t->port))
            continue;
        cn_log_warn("%s: tunnel %s targets %s:%u, which this agent's policy does not allow "
                    "(add it to \"allow\" in %s)",
                    d->who, t->name[0] ? t->name : t->id, t->host, (unsigned)t->port,
                    d->policy_config);
        json_t *msg = json_pack("{s:s,s:s,s:s}", "type", "tunnel_error", "tunnelId", t->id, "error",
                                AGENT_POLICY_REFUSED);
        if (msg && cn_mux_send_control(cn_link_mux(link), msg) < 0)
            cn_log_warn("%s: could not report tunnel %s to the hub", d->who, t->id);
        json_decref(msg);
    }
    cn_link_flush(link);
}

static int set_tunnels(agent_daemon_t *d, cn_link_t *link, json_t *list)
{
    agent_allowlist_t l = {0};
    size_t skipped = 0;
    int rc = agent_allowlist_parse(list, &l, &skipped);
    if (rc < 0)
        return rc;
    if (skipped)
        cn_log_warn("%s: ignoring %zu malformed tunnel entr%s from the hub", d->who, skipped,
                    skipped == 1 ? "y" : "ies");
    agent_allowlist_free(&d->tunnels);
    d->tunnels = l;
    prune_conns(d);
    if (d->policy_config[0]) {
        reload_policy(d);
        report_refused(d, link);
    }
    return 0;
}

/* {"type":"tunnel_upsert","tunnel":T} or {"type":"tunnel_remove",
 * "tunnelId":ID}: one entry of the list added, replaced or dropped, sent
 * instead of the whole list since we asked ("tunnelDelta"), behind the list
 * it applies to on the ordered CONTROL stream. Applied as a list with that
 * change would be: a removed or closed tunnel's streams end, a new or
 * changed target meets the local policy. 1 when the list changed, 0 when
 * not, negative after closing the link (malformed, or a list above
 * AGENT_ALLOWLIST_MAX: the hub sends the whole list afresh after the
 * reconnect). */
static int apply_delta(agent_daemon_t *d, cn_link_t *link, const json_t *msg, const char *type)
{
    bool upsert = !strcmp(type, "tunnel_upsert");
    int rc = upsert ? agent_allowlist_upsert(&d->tunnels, json_object_get(msg, "tunnel"))
                    : agent_allowlist_remove(&d->tunnels,
                                             json_string_value(json_object_get(msg, "tunnelId")));
    if (rc < 0) {
        cn_log_warn("%s: %s %s from the hub (%s); reconnecting", d->who,
                    rc == CN_ETOOBIG ? "too many tunnels with an upsert" : "malformed", type,
                    cn_strerror(rc));
        cn_link_close(link, rc == CN_ETOOBIG ? "tunnel list too long" : "malformed tunnel delta");
        return rc;
    }
    if (rc == 0)
        return 0;
    prune_conns(d);
    if (upsert && d->policy_config[0]) {
        reload_policy(d);
        report_refused(d, link);
    }
    return 1;
}

static void on_control(void *ctx, const uint8_t *payload, size_t len)
{
    cn_link_t *link = ctx;
    agent_daemon_t *d = cn_link_user(link);
    json_t *msg = json_loadb((const char *)payload, len, JSON_REJECT_DUPLICATES, NULL);
    const char *type = json_string_value(json_object_get(msg, "type"));
    if (!type) {
        cn_log_warn("%s: malformed control message from the hub; reconnecting", d->who);
        cn_link_close(link, "malformed control message");
        goto out;
    }
    if (!strcmp(type, "hello")) {
        /* A long list follows in tunnels_page messages: until the last
         * one, the previous list stays in force (never half of one). */
        bool paged = json_is_true(json_object_get(msg, "tunnelsPaged"));
        cn_ctlpage_reset(&d->pages);
        const char *aid = json_string_value(json_object_get(msg, "agentId"));
        const char *ws = json_string_value(json_object_get(msg, "workspaceId"));
        if (d->agent_id[0] && aid && strcasecmp(aid, d->agent_id) != 0)
            cn_log_warn("%s: the hub calls this agent %s", d->who, aid);
        if (ws && strlen(ws) < sizeof(d->workspace_id))
            snprintf(d->workspace_id, sizeof(d->workspace_id), "%s", ws);
        json_t *tl = json_object_get(msg, "tunnels");
        json_t *empty = tl ? NULL : json_array();
        if (!paged && set_tunnels(d, link, tl ? tl : empty) < 0) {
            json_decref(empty);
            cn_log_warn("%s: malformed hello from the hub; reconnecting", d->who);
            cn_link_close(link, "malformed hello");
            goto out;
        }
        json_decref(empty);
        d->admitted = true;
        if (d->health)
            agent_health_reset(d->health); /* tell this link afresh */
        /* The whole handshake worked: if this link dies, retry at once
         * (the rate cap still bounds a link that keeps dying). */
        agent_backoff_reset(&d->backoff);
        if (paged)
            cn_log_info("%s: connected to %s (%s, tunnel list to follow in pages)", d->who,
                        d->hub_url, cn_link_cipher(link) ? cn_link_cipher(link) : "?");
        else
            cn_log_info("%s: connected to %s (%s, %zu tunnel%s)", d->who, d->hub_url,
                        cn_link_cipher(link) ? cn_link_cipher(link) : "?", d->tunnels.count,
                        d->tunnels.count == 1 ? "" : "s");
        if (d->cfg.on_hello)
            d->cfg.on_hello(d->cfg.ctx, d, msg);
        if (d->cfg.on_tunnels && !paged)
            d->cfg.on_tunnels(d->cfg.ctx, d);
    } else if (!strcmp(type, "tunnels_page")) {
        json_t *whole = NULL;
        int rc = cn_ctlpage_add(&d->pages, msg, &whole);
        if (rc < 0) {
            cn_log_warn("%s: bad tunnel list page from the hub (%s); reconnecting", d->who,
                        cn_strerror(rc));
            cn_link_close(link, "malformed tunnel list");
            goto out;
        }
        if (rc == 0)
            goto out; /* more pages are due */
        rc = set_tunnels(d, link, whole);
        json_decref(whole);
        if (rc < 0) {
            cn_log_warn("%s: malformed tunnel list from the hub; reconnecting", d->who);
            cn_link_close(link, "malformed tunnel list");
            goto out;
        }
        cn_log_info("%s: %zu tunnel%s (paged list)", d->who, d->tunnels.count,
                    d->tunnels.count == 1 ? "" : "s");
        if (d->cfg.on_tunnels)
            d->cfg.on_tunnels(d->cfg.ctx, d);
    } else if (!strcmp(type, "tunnel_status")) {
        /* One tunnel's new status (a health verdict, a refusal): the hub
         * sends it instead of the whole list, behind the list it applies
         * to, since we asked ("tunnelStatus" in the handshake payload). */
        const char *id = json_string_value(json_object_get(msg, "tunnelId"));
        const char *st = json_string_value(json_object_get(msg, "status"));
        const agent_tunnel_t *t = id ? agent_allowlist_find(&d->tunnels, id, strlen(id)) : NULL;
        bool was_open = t && agent_tunnel_open(t);
        int rc = id && st ? agent_allowlist_set_status(&d->tunnels, id, st) : CN_EINVAL;
        if (rc < 0) {
            cn_log_warn("%s: malformed tunnel status from the hub; reconnecting", d->who);
            cn_link_close(link, "malformed tunnel status");
            goto out;
        }
        if (rc == 0 || !t)
            goto out; /* not listed, or no change */
        cn_log_debug("%s: tunnel %s is %s", d->who, t->name[0] ? t->name : t->id, t->status);
        if (was_open != agent_tunnel_open(t))
            prune_conns(d); /* the hub sends no such change this way, but be exact */
        if (d->cfg.on_tunnels)
            d->cfg.on_tunnels(d->cfg.ctx, d);
    } else if (!strcmp(type, "tunnel_upsert") || !strcmp(type, "tunnel_remove")) {
        if (apply_delta(d, link, msg, type) <= 0)
            goto out; /* no change, or the link is closing */
        if (d->cfg.on_tunnels)
            d->cfg.on_tunnels(d->cfg.ctx, d);
    } else if (!strcmp(type, "tunnels")) {
        if (set_tunnels(d, link, json_object_get(msg, "tunnels")) < 0) {
            cn_log_warn("%s: malformed tunnel list from the hub; reconnecting", d->who);
            cn_link_close(link, "malformed tunnel list");
            goto out;
        }
        cn_log_debug("%s: %zu tunnel%s", d->who, d->tunnels.count,
                     d->tunnels.count == 1 ? "" : "s");
        if (d->cfg.on_tunnels)
            d->cfg.on_tunnels(d->cfg.ctx, d);
    } else {
        cn_log_debug("%s: ignoring control message '%.32s'", d->who, type);
    }
out:
    json_decref(msg);
}

static void on_goaway(void *ctx, uint32_t code, const char *msg, size_t msg_len)
{
    agent_daemon_t *d = cn_link_user(ctx);
    cn_log_info("%s: the hub is closing the link (%.*s)", d->who,
                (int)(msg_len > 200 ? 200 : msg_len), msg ? msg : "");
}

/* ---- link lifecycle --------------------------------------------------- */

/* Health probes: this link's open tunnels whose target the policy allows. */
static bool health_wanted(void *ctx, const agent_tunnel_t *t)
{
    agent_daemon_t *d = ctx;
    return (!d->nserve || serves(d, t->id)) && agent_tunnel_open(t) &&
           (!d->policy_config[0] || agent_policy_allows(&d->policy, t->host, t->port));
}

/* {"type":"tunnel_health","tunnelId":ID,"ok":BOOL,"error":TEXT?} */
static void health_report(void *ctx, const agent_tunnel_t *t, bool ok, const char *why)
{
    agent_daemon_t *d = ctx;
    if (!d->link)
        return;
    if (ok)
        cn_log_info("%s: tunnel %s: target %s:%u is healthy again", d->who,
                    t->name[0] ? t->name : t->id, t->host, (unsigned)t->port);
    else
        cn_log_warn("%s: tunnel %s: target %s:%u is down: %s", d->who, t->name[0] ? t->name : t->id,
                    t->host, (unsigned)t->port, why);
    json_t *msg = json_pack("{s:s,s:s,s:b}", "type", "tunnel_health", "tunnelId", t->id, "ok", ok);
    if (msg && !ok)
        json_object_set_new(msg, "error", json_string(why));
    if (!msg || cn_mux_send_control(cn_link_mux(d->link), msg) < 0)
        cn_log_warn("%s: could not report tunnel %s's health to the hub", d->who, t->id);
    json_decref(msg);
    cn_link_flush(d->link);
}

static void heartbeat(lws_sorted_usec_list_t *sul)
{
    agent_daemon_t *d = lws_container_of(sul, agent_daemon_t, sul_heartbeat);
    if (d->health && d->link && d->admitted && !d->stopping && !d->destroying)
        agent_health_tick(d->health, d->tunnels.items, d->tunnels.count, health_wanted,
                          health_report, d);
    /* Probes in flight advance on every tick: tick often until they end. */
    lws_usec_t next = d->health && agent_health_busy(d->health) ? HEALTH_TICK_US : HEARTBEAT_US;
    if (!d->destroying)
        lws_sul_schedule(d->context, 0, &d->sul_heartbeat, heartbeat, next);
}

static void reconnect_cb(lws_sorted_usec_list_t *sul)
{
    agent_daemon_t *d = lws_container_of(sul, agent_daemon_t, sul_reconnect);
    if (!d->stopping && !d->destroying && !d->link)
        connect_now(d);
}

static void link_down(agent_daemon_t *d, int err, cn_link_reason_t reason, const char *why)
{
    bool admitted = d->admitted, established = d->established;
    /* A stream still being dialed is pending in the mux, which cannot tell
     * its pipe that the link is gone (no user pointer yet): abort it here,
     * while the mux still exists, so it never touches the freed link when
     * its connect() finishes. The target gets a reset. Accepted streams
     * already ended through the mux; aborting them again is harmless. */
    agent_conn_t *next;
    for (agent_conn_t *c = d->conns; c; c = next) {
        next = c->next;
        if (c->pipe)
            cn_pipe_abort(c->pipe, CN_RST_GONE);
    }
    d->link = NULL;
    d->admitted = d->established = false;
    cn_ctlpage_reset(&d->pages); /* a list cut short is never used */
    if (d->destroying)
        return;
    if (d->stopping)
        cn_log_info("%s: link to %s closed", d->who, d->hub_url);
    else if (admitted)
        cn_log_warn("%s: disconnected from %s: %s", d->who, d->hub_url, why);
    else if (!d->stopping && established)
        cn_log_warn("%s: the hub at %s closed the connection before admitting us: %s", d->who,
                    d->hub_url, why);
    else if (!d->stopping)
        cn_log_warn("%s: cannot connect to %s: %s", d->who, d->hub_url, why);
    if (d->cfg.on_down) {
        agent_down_t down = {err, reason, why, established, admitted};
        d->cfg.on_down(d->cfg.ctx, d, &down);
    }
    if (d->stopping || d->enrolling)
        return;
    uint32_t delay = agent_backoff_next(&d->backoff, cn_time_mono_ms(), randombytes_random());
    cn_log_info("%s: reconnecting in %.1f s", d->who, delay / 1000.0);
    lws_sul_schedule(d->context, 0, &d->sul_reconnect, reconnect_cb,
                     (lws_usec_t)delay * LWS_US_PER_MS);
}

static int on_established(cn_link_t *link, void *ctx)
{
    agent_daemon_t *d = ctx;
    d->established = true;
    cn_log_debug("%s: secure channel up (%s), waiting for the hub's hello", d->who,
                 cn_link_cipher(link) ? cn_link_cipher(link) : "?");
    return 0;
}

static void on_closed(cn_link_t *link, void *ctx, int err, const char *why)
{
    agent_daemon_t *d = ctx;
    if (d->link == link)
        link_down(d, err, cn_link_close_reason(link), why);
}

/* Streams the hub may open on our link: each costs a descriptor here (the
 * target's socket), so the fd limit bounds them, not the mux's default
 * 4,096 (a tunnel with 10,000 clients needs a `ulimit -n` above 10,000,
 * and then its streams fit). */
static uint32_t max_streams(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur <= CN_MUX_DEFAULT_MAX_STREAMS)
        return CN_MUX_DEFAULT_MAX_STREAMS;
    return rl.rlim_cur > (1u << 20) ? 1u << 20 : (uint32_t)rl.rlim_cur;
}

static void connect_now(agent_daemon_t *d)
{
    cn_link_client_config_t cc = {
        .host = d->url.host,
        .port = d->url.port,
        .host_header = d->host_header,
        .path = d->path,
        .tls = d->tls,
        .binding = "",
        .static_sk = d->sk,
        .hub_pk = d->hub_pk,
        .payload = d->payload,
        .payload_len = d->payload_len,
        .mux_cb = &d->mux_cb,
        .cb = {.on_established = on_established, .on_closed = on_closed},
        .ctx = d,
        .user = d,
        .timing = d->cfg.timing,
        .mux = {.max_streams = max_streams(),
                .window = d->cfg.stream_window,
                .window_update = d->cfg.window_update},
        .flush_after_turn = 1, /* agent_daemon_service() calls cn_link_flush_turn() */
    };
    char why[160];
    d->established = d->admitted = false;
    agent_backoff_started(&d->backoff, cn_time_mono_ms());
    /* Where a connection's time starts: with the hub's "connected" line,
     * this splits the time to get in from the process's own start. */
    cn_log_debug("%s: connecting to %s", d->who, d->hub_url);
    cn_link_t *l = cn_link_connect(d->context, d->vh, &cc, why, sizeof(why));
    if (!l) {
        d->link = NULL;
        link_down(d, CN_EIO, CN_LINK_CONNECT_FAILED, why);
        return;
    }
    d->link = l;
}

/* ---- reach listeners ---------------------------------------------------- */

static void refuse_socket(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

/* A local connection: a stream to the exposing agent, through the hub,
 * or RST at once when there is no link to carry it. */
static void reach_accept(agent_reach_t *r, int fd)
{
    agent_daemon_t *d = r->d;
    if (!d->link || !d->admitted || d->stopping) {
        cn_log_warn("%s reach %s: connection refused: not connected to the hub", d->who, r->name);
        refuse_socket(fd);
        return;
    }
    char label[256];
    snprintf(label, sizeof(label), "%s reach %s connection %u", d->who, r->name, ++r->accepted);
    agent_conn_t *c = conn_new(label);
    if (!c) {
        refuse_socket(fd);
        return;
    }
    c->d = d;
    c->reaching = true;
    memcpy(c->tunnel_id, r->tunnel_id, sizeof(c->tunnel_id));
    c->next = d->conns;
    if (d->conns)
        d->conns->prev = c;
    d->conns = c;
    d->nconns++;
    cn_e2e_config_t e2e = {CN_E2E_INITIATOR, d->sk, r->peer_key, r->tunnel_id};
    cn_pipe_config_t pc = {.done = conn_done, .ctx = c, .e2e = &e2e};
    int err = 0;
    /* cn_pipe_open owns fd from here, on failure too. */
    c->pipe = cn_pipe_open(d->vh, fd, d->link, CN_KIND_RELAY, (const uint8_t *)r->tunnel_id,
                           strlen(r->tunnel_id), NULL, 0, &pc, &err);
    if (!c->pipe) {
        cn_log_warn("%s: cannot open a stream: %s", c->label, cn_strerror(err));
        conn_unlink(d, c);
        free(c);
        return;
    }
    cn_log_debug("%s: opened", c->label);
}

static int reach_listen_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                                 void *in, size_t len)
{
    agent_reach_t *r = lws_get_opaque_user_data(wsi);
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        if (!r)
            return 0;
        for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
            int fd = accept4(lws_get_socket_fd(wsi), NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EMFILE || errno == ENFILE)
                    cn_log_warn("reach %s: out of file descriptors, connection left queued",
                                r->name);
                break;
            }
            reach_accept(r, fd);
        }
        return 0;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        if (!r)
            return 0;
        lws_set_opaque_user_data(wsi, NULL);
        for (agent_reach_t **pp = &r->d->reaches; *pp; pp = &(*pp)->next)
            if (*pp == r) {
                *pp = r->next;
                break;
            }
        free(r);
        return 0;
    default:
        return 0;
    }
}

/* Reach of a UDP tunnel: flows go out on the daemon's link while it is
 * up; while it is down datagrams are dropped with a log line. */
static cn_link_t *udp_reach_route(void *ctx, const char **why)
{
    agent_daemon_t *d = ctx;
    if (!d->link || !d->admitted || d->stopping) {
        *why = "not connected to the hub";
        return NULL;
    }
    return d->link;
}

static int reach_udp(agent_daemon_t *d, const agent_reach_config_t *cfg, int *bound_port, char *err,
                     size_t errlen)
{
    if (d->nudp_reaches >= AGENT_DAEMON_MAX_SERVE)
        return cn_errf(CN_EINVAL, err, errlen, "too many UDP reaches");
    cn_e2e_config_t e2e = {CN_E2E_INITIATOR, d->sk, cfg->peer_key, cfg->tunnel_id};
    cn_udp_listener_config_t lc = {
        .kind = CN_KIND_RELAY,
        .ref = cfg->tunnel_id,
        .name = cfg->name,
        .e2e = &e2e,
        .route = udp_reach_route,
        .ctx = d,
    };
    int port = 0;
    cn_udp_listener_t *l = cn_udp_listen(d->vh, cfg->host, cfg->port, &lc, &port, err, errlen);
    if (!l)
        return CN_EIO;
    d->udp_reaches[d->nudp_reaches++] = l;
    if (bound_port)
        *bound_port = port;
    cn_log_info("%s reach %s: listening on UDP %s:%d", d->who,
                cfg->name ? cfg->name : cfg->tunnel_id, cfg->host, port);
    return 0;
}

int agent_daemon_reach(agent_daemon_t *d, const agent_reach_config_t *cfg, int *bound_port,
                       char *err, size_t errlen)
{
    if (!cfg || !cfg->tunnel_id || !cn_id_is_uuid(cfg->tunnel_id) || !cfg->peer_key || !cfg->host ||
        cfg->port < 0 || cfg->port > 65535)
        return cn_errf(CN_EINVAL, err, errlen, "reach: bad configuration");
    if (cfg->udp)
        return reach_udp(d, cfg, bound_port, err, errlen);
    int port = 0;
    int fd = cn_sock_listen(cfg->host, cfg->port, REACH_BACKLOG, &port);
    if (fd < 0)
        return cn_errf(fd, err, errlen, "cannot listen on %s:%d: %s", cfg->host, cfg->port,
                       fd == CN_EIO ? strerror(errno) : "not a local address");
    agent_reach_t *r = calloc(1, sizeof(*r));
    if (!r) {
        close(fd);
        return cn_errf(CN_ENOMEM, err, errlen, "out of memory");
    }
    r->d = d;
    r->port = port;
    snprintf(r->tunnel_id, sizeof(r->tunnel_id), "%s", cfg->tunnel_id);
    snprintf(r->name, sizeof(r->name), "%s", cfg->name ? cfg->name : cfg->tunnel_id);
    memcpy(r->peer_key, cfg->peer_key, sizeof(r->peer_key));
    lws_sock_file_fd_type u;
    u.filefd = fd;
    r->wsi = lws_adopt_descriptor_vhost(d->vh, LWS_ADOPT_RAW_FILE_DESC, u, REACH_PROTOCOL, NULL);
    if (!r->wsi) {
        close(fd);
        free(r);
        return cn_errf(CN_EIO, err, errlen, "cannot watch the reach listener");
    }
    lws_set_opaque_user_data(r->wsi, r);
    r->next = d->reaches;
    d->reaches = r;
    if (bound_port)
        *bound_port = port;
    cn_log_info("%s reach %s: listening on %s:%d", d->who, r->name, cfg->host, port);
    return 0;
}

/* ---- public ----------------------------------------------------------- */

static int http_dummy(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                      size_t len)
{
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

void agent_daemon_config_from(agent_daemon_config_t *dc, const agent_config_t *cfg)
{
    memset(dc, 0, sizeof(*dc));
    dc->hub_url = cfg->hub;
    dc->ca_file = cfg->ca_file[0] ? cfg->ca_file : NULL;
    dc->allow_insecure = cfg->allow_insecure;
    dc->agent_sk = cfg->agent_sk;
    dc->hub_pk = cfg->hub_pk;
    dc->agent_id = cfg->agent_id;
    dc->policy_config = cfg->path;
}

/* A setting from the config, else from the environment variable `name`
 * (a decimal number of `unit` up to max; empty or unset: 0, the default). */
static int env_setting(uint32_t from_cfg, const char *name, uint32_t max, const char *unit,
                       uint32_t *out, char *err, size_t errlen)
{
    *out = from_cfg;
    const char *s = getenv(name);
    if (from_cfg || !s || !*s)
        return 0;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s < '0' || *s > '9' || *end || errno || v > max)
        return cn_errf(CN_EINVAL, err, errlen, "%s must be a number of %s up to %u, not '%.32s'",
                       name, unit, max, s);
    *out = (uint32_t)v;
    return 0;
}

/* Fills the window and busy-poll settings (config, else environment) and
 * checks them. */
static int env_settings(agent_daemon_config_t *c, char *err, size_t errlen)
{
    const char *why = NULL;
    if (env_setting(c->stream_window, "CONNECT_STREAM_WINDOW", CN_FRAME_MAX_WINDOW, "bytes",
                    &c->stream_window, err, errlen) ||
        env_setting(c->window_update, "CONNECT_WINDOW_UPDATE", CN_FRAME_MAX_WINDOW, "bytes",
                    &c->window_update, err, errlen) ||
        env_setting(c->busy_poll_us, "CONNECT_BUSY_POLL", CN_LOOP_BUSY_POLL_MAX, "microseconds",
                    &c->busy_poll_us, err, errlen))
        return CN_EINVAL;
    if (!cn_mux_window_valid(c->stream_window, c->window_update, &why))
        return cn_errf(CN_EINVAL, err, errlen, "CONNECT_STREAM_WINDOW/CONNECT_WINDOW_UPDATE: %s",
                       why);
    return 0;
}

/* Busy polling is a feature of the epoll loop. */
static int busy_poll_check(uint32_t busy_poll_us, cn_loop_kind_t kind, char *err, size_t errlen)
{
    if (busy_poll_us && kind != CN_LOOP_EPOLL)
        return cn_errf(CN_EINVAL, err, errlen, "CONNECT_BUSY_POLL needs the epoll loop, not %s",
                       cn_loop_kind_name(kind));
    return 0;
}

int agent_daemon_check_env(char *err, size_t errlen)
{
    agent_daemon_config_t c = {0};
    cn_loop_kind_t kind = CN_LOOP_EPOLL;
    const char *loop_env = getenv("CONNECT_EVENT_LOOP");
    if (loop_env && *loop_env && !cn_loop_kind_parse(loop_env, &kind))
        return cn_errf(CN_EINVAL, err, errlen, "CONNECT_EVENT_LOOP must be %s, not '%.32s'",
                       CN_LOOP_CHOICES, loop_env);
    int rc = env_settings(&c, err, errlen);
    return rc < 0 ? rc : busy_poll_check(c.busy_poll_us, kind, err, errlen);
}

agent_daemon_t *agent_daemon_new(const agent_daemon_config_t *cfg, char *err, size_t errlen)
{
    agent_daemon_t *d = calloc(1, sizeof(*d));
    if (d)
        d->pages.max_items = AGENT_ALLOWLIST_MAX;
    json_t *p = NULL;
    char *text = NULL;
    if (!d) {
        cn_errf(CN_ENOMEM, err, errlen, "out of memory");
        return NULL;
    }
    d->cfg = *cfg;
    if (env_settings(&d->cfg, err, errlen) < 0)
        goto fail;
    if (d->cfg.stream_window || d->cfg.window_update) {
        uint32_t w = d->cfg.stream_window ? d->cfg.stream_window : CN_MUX_DEFAULT_WINDOW;
        cn_log_info("link: stream window %u bytes, credit returned every %u bytes", w,
                    d->cfg.window_update ? d->cfg.window_update : w / 4);
    }
    agent_backoff_init(&d->backoff, cfg->backoff_base_ms, cfg->backoff_cap_ms,
                       cfg->reconnects_per_min, cfg->reconnect_burst);
    if (!cfg->hub_url || strlen(cfg->hub_url) >= sizeof(d->hub_url) ||
        cn_api_parse_url(cfg->hub_url, &d->url, err, errlen) < 0)
        goto fail;
    snprintf(d->hub_url, sizeof(d->hub_url), "%s", cfg->hub_url);
    /* The enroll secret and the link's metadata must not cross a network
     * without TLS unless the user said so (the Noise channel would still
     * protect them, but the rule is one rule for every hub connection). */
    if (cn_tls_check_scheme(d->url.tls, d->url.host, cfg->allow_insecure, err, errlen) < 0)
        goto fail;
    if (cfg->ca_file && strlen(cfg->ca_file) >= sizeof(d->ca_file)) {
        cn_errf(CN_EINVAL, err, errlen, "the CA file path is too long");
        goto fail;
    }
    snprintf(d->ca_file, sizeof(d->ca_file), "%s", cfg->ca_file ? cfg->ca_file : "");
    if (d->url.tls && !(d->tls = cn_tls_ctx_new(d->ca_file, err, errlen)))
        goto fail;
    if (d->url.ipv6)
        snprintf(d->host_header, sizeof(d->host_header), "[%s]:%d", d->url.host, d->url.port);
    else
        snprintf(d->host_header, sizeof(d->host_header), "%s:%d", d->url.host, d->url.port);
    snprintf(d->path, sizeof(d->path), "%s/agent", d->url.base);
    memcpy(d->sk, cfg->agent_sk, 32);
    memcpy(d->hub_pk, cfg->hub_pk, 32);
    d->enrolling = cfg->enroll != NULL;
    if (d->enrolling) {
        p = json_pack("{s:i,s:s}", "v", 1, "enroll", cfg->enroll);
        snprintf(d->who, sizeof(d->who), "enrollment");
    } else if (cfg->share) {
        p = json_pack("{s:i,s:s}", "v", 1, "share", cfg->share);
        snprintf(d->who, sizeof(d->who), "share redeemer");
        d->serve_none = true;
    } else {
        if (!cfg->agent_id || strlen(cfg->agent_id) >= sizeof(d->agent_id)) {
            cn_errf(CN_EINVAL, err, errlen, "no agent id");
            goto fail;
        }
        snprintf(d->agent_id, sizeof(d->agent_id), "%s", cfg->agent_id);
        snprintf(d->who, sizeof(d->who), "agent %.8s", cfg->agent_id);
        /* tunnelStatus: this agent applies tunnel_status messages, so the
         * hub need not send the whole list for one tunnel's new status.
         * CONNECT_TUNNEL_STATUS=0 leaves it out, as an agent before it did:
         * how a hub's handling of such agents is tested. */
        const char *ts = getenv("CONNECT_TUNNEL_STATUS");
        p = json_pack("{s:i,s:s}", "v", 1, "agentId", cfg->agent_id);
        if (p && !(ts && !strcmp(ts, "0")))
            json_object_set_new(p, "tunnelStatus", json_true());
        /* tunnelDelta: likewise tunnel_upsert and tunnel_remove, so that
         * one tunnel made, edited or deleted costs one entry, not the
         * whole list (CONNECT_TUNNEL_DELTA=0: an agent before them). */
        const char *td = getenv("CONNECT_TUNNEL_DELTA");
        if (p && !(td && !strcmp(td, "0")))
            json_object_set_new(p, "tunnelDelta", json_true());
        if (cfg->nserve > AGENT_DAEMON_MAX_SERVE) {
            cn_errf(CN_EINVAL, err, errlen, "too many tunnels for one link");
            goto fail;
        }
        d->serve_none = cfg->serve_none;
        json_t *ids = cfg->nserve || cfg->serve_none ? json_array() : NULL;
        for (size_t i = 0; i < cfg->nserve; i++) {
            if (!cn_id_is_uuid(cfg->serve[i])) {
                json_decref(ids);
                cn_errf(CN_EINVAL, err, errlen, "not a tunnel id: %.40s", cfg->serve[i]);
                goto fail;
            }
            snprintf(d->serve[d->nserve++], sizeof(d->serve[0]), "%s", cfg->serve[i]);
            json_array_append_new(ids, json_string(cfg->serve[i]));
        }
        if (ids && p)
            json_object_set_new(p, "tunnels", ids);
        else
            json_decref(ids);
    }
    if (cfg->policy_config) {
        if (!*cfg->policy_config || strlen(cfg->policy_config) >= sizeof(d->policy_config)) {
            snprintf(err, errlen, "bad policy config path");
            goto fail;
        }
        snprintf(d->policy_config, sizeof(d->policy_config), "%s", cfg->policy_config);
        if (agent_config_load_policy(d->policy_config, &d->policy, NULL, err, errlen) < 0)
            goto fail;
    }
    text = p ? json_dumps(p, JSON_COMPACT) : NULL;
    if (!text || strlen(text) > sizeof(d->payload)) {
        cn_errf(CN_ENOMEM, err, errlen, "cannot build the handshake payload");
        goto fail;
    }
    d->payload_len = strlen(text);
    memcpy(d->payload, text, d->payload_len);
    sodium_memzero(text, d->payload_len);
    free(text);
    text = NULL;
    json_decref(p);
    p = NULL;
    d->cfg.hub_url = d->hub_url;
    d->cfg.agent_id = d->agent_id;
    d->cfg.enroll = NULL;
    d->cfg.share = NULL;
    d->cfg.serve = NULL;
    d->cfg.nserve = 0;
    d->cfg.policy_config = NULL;
    d->cfg.agent_sk = d->sk;
    d->cfg.hub_pk = d->hub_pk;
    d->cfg.ca_file = d->ca_file;

    cn_stream_dispatch_callbacks(&d->mux_cb);
    d->mux_cb.on_open = on_open;
    d->mux_cb.on_control = on_control;
    d->mux_cb.on_goaway = on_goaway;

    d->protocols[0].name = "http";
    d->protocols[0].callback = http_dummy;
    d->protocols[1] = *cn_link_client_protocol();
    d->protocols[2] = *cn_pipe_protocol();
    d->protocols[3].name = REACH_PROTOCOL;
    d->protocols[3].callback = reach_listen_callback;
    d->protocols[4] = *cn_udp_protocol();

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = d->protocols;
    info.pt_serv_buf_size = CN_LINK_LWS_BUF;
    const char *loop_env = getenv("CONNECT_EVENT_LOOP");
    cn_loop_kind_t kind = CN_LOOP_EPOLL;
    if (cfg->poll_loop)
        kind = CN_LOOP_POLL;
    else if (loop_env && *loop_env && !cn_loop_kind_parse(loop_env, &kind)) {
        cn_errf(CN_EINVAL, err, errlen, "CONNECT_EVENT_LOOP must be %s, not '%.32s'",
                CN_LOOP_CHOICES, loop_env);
        goto fail;
    }
    /* An embedding process's poll loop (cfg->poll_loop) ignores it. */
    if (!cfg->poll_loop && busy_poll_check(d->cfg.busy_poll_us, kind, err, errlen) < 0)
        goto fail;
    char lerr[96];
    if (!(d->loop = cn_loop_new(kind, &info, lerr, sizeof(lerr)))) {
        cn_errf(CN_EIO, err, errlen, "%s", lerr);
        goto fail;
    }
    if (cn_loop_kind(d->loop) == CN_LOOP_EPOLL && d->cfg.busy_poll_us) {
        cn_loop_set_busy_poll(d->loop, d->cfg.busy_poll_us);
        cn_log_info("event loop: busy polling up to %u us after each turn with events",
                    d->cfg.busy_poll_us);
    }
    d->context = lws_create_context(&info);
    if (!d->context) {
        cn_errf(CN_EIO, err, errlen, "cannot create the event loop%s", cn_loop_hint(d->loop));
        goto fail;
    }
    d->vh = lws_get_vhost_by_name(d->context, "default");
    if (!d->vh) {
        cn_errf(CN_EIO, err, errlen, "cannot create the event loop (no vhost)");
        goto fail;
    }
    if (cfg->plugins && !d->enrolling &&
        !(d->health = agent_health_new(cfg->plugins, agent_health_interval_from_env()))) {
        cn_errf(CN_ENOMEM, err, errlen, "out of memory");
        goto fail;
    }
    lws_sul_schedule(d->context, 0, &d->sul_heartbeat, heartbeat, HEARTBEAT_US);
    connect_now(d);
    return d;
fail:
    json_decref(p);
    free(text);
    agent_daemon_free(d);
    return NULL;
}

int agent_daemon_service(agent_daemon_t *d)
{
    /* One turn: returns after the events it waited for; the 250 ms
     * heartbeat timer, a wake-up or a signal (EINTR) bound the wait. */
    if (cn_loop_run_once(d->loop, d->context) < 0)
        return CN_EIO;
    cn_pipe_flush_turn(); /* sockets, then the hub link: this turn's output */
    return 0;
}

void agent_daemon_stop(agent_daemon_t *d)
{
    if (!d || d->stopping)
        return;
    d->stopping = true;
    lws_sul_cancel(&d->sul_reconnect);
    for (size_t i = 0; i < d->nudp_reaches; i++)
        cn_udp_listener_close(d->udp_reaches[i], CN_RST_GONE);
    d->nudp_reaches = 0;
    agent_conn_t *next;
    for (agent_conn_t *c = d->conns; c; c = next) {
        next = c->next;
        if (c->pipe)
            cn_pipe_abort(c->pipe, CN_RST_GONE);
    }
    if (d->link)
        cn_link_close(d->link, "agent stopping");
}

bool agent_daemon_idle(const agent_daemon_t *d)
{
    return (d->stopping || d->enrolling) && !d->link && !d->conns;
}

void agent_daemon_free(agent_daemon_t *d)
{
    if (!d)
        return;
    d->stopping = d->destroying = true;
    if (d->context) {
        lws_sul_cancel(&d->sul_reconnect);
        lws_sul_cancel(&d->sul_heartbeat);
        cn_loop_context_destroy(d->loop, d->context);
    }
    cn_loop_free(d->loop);
    /* Connections lws did not close (no context): freed in one walk. */
    for (agent_conn_t *c = d->conns, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    while (d->reaches) {
        agent_reach_t *r = d->reaches;
        d->reaches = r->next;
        free(r);
    }
    agent_health_free(d->health);
    agent_allowlist_free(&d->tunnels);
    cn_ctlpage_reset(&d->pages);
    agent_policy_free(&d->policy);
    cn_tls_ctx_free(d->tls); /* after the context: its links used it */
    sodium_memzero(d->sk, sizeof(d->sk));
    sodium_memzero(d->payload, sizeof(d->payload));
    free(d);
}

int agent_daemon_shutdown(agent_daemon_t *d, unsigned ms, const volatile sig_atomic_t *cut_short)
{
    if (!d)
        return 0;
    agent_daemon_stop(d);
    uint64_t until = cn_time_mono_ms() + ms;
    while (!agent_daemon_idle(d) && cn_time_mono_ms() < until && !(cut_short && *cut_short))
        if (agent_daemon_service(d) < 0)
            break;
    int rc = agent_daemon_idle(d) ? 0 : CN_ETIMEOUT;
    agent_daemon_free(d);
    return rc;
}

void agent_daemon_wake(agent_daemon_t *d)
{
    lws_cancel_service(d->context);
}

const agent_allowlist_t *agent_daemon_tunnels(const agent_daemon_t *d)
{
    return &d->tunnels;
}

bool agent_daemon_connected(const agent_daemon_t *d)
{
    return d->link && d->admitted;
}

size_t agent_daemon_streams(const agent_daemon_t *d)
{
    return d->nconns;
}

const char *agent_daemon_workspace(const agent_daemon_t *d)
{
    return d->workspace_id;
}
