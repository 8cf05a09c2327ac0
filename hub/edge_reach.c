/* Reach on the hub: an agent opens a stream (CN_KIND_RELAY) naming a tunnel
 * of its workspace; the hub checks it, opens a stream on the newest link
 * that serves the tunnel, tells the exposing agent who is reaching (agent
 * id and static key: the hub vouches for the key from enrollment), and
 * relays the two streams (relay.h). The bytes are the agents' end-to-end
 * records; the hub cannot read them (docs/protocol.md). */
#include "runtime_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cn_err.h"
#include "cn_frame.h"
#include "cn_id.h"
#include "cn_link.h"
#include "cn_log.h"
#include "relay.h"
#include "share_cache.h"
#include "share_policy.h"

static void link_flush(void *link)
{
    cn_link_flush(link);
}

/* CONNECT_HUB_RELAY_DUMP=FILE: every relayed byte is appended to FILE, so
 * a test can check what the hub could see (the agents' records, never the
 * client's bytes). Debugging only. */
static void dump_tap(void *ctx, int dir, const uint8_t *bytes, size_t len)
{
    reach_t *r = ctx;
    const char *path = getenv("CONNECT_HUB_RELAY_DUMP");
    FILE *f = path && *path ? fopen(path, "ab") : NULL;
    if (!f)
        return;
    if (fwrite(bytes, 1, len, f) != len)
        cn_log_warn("tunnel %s: relay dump: short write", r->tunnel_id);
    fclose(f);
}

static void reach_done(void *ctx, hub_relay_t *relay, uint32_t code)
{
    reach_t *r = ctx;
    hub_runtime_t *rt = r->rt;
    for (reach_t **pp = &rt->reaches; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    rt->conns--;
    cn_log_debug("tunnel %s: reach from agent %s ended (%s), %llu bytes up, %llu down",
                 r->tunnel_id, r->from_agent, code ? "reset" : "clean",
                 (unsigned long long)hub_relay_bytes_up(relay),
                 (unsigned long long)hub_relay_bytes_down(relay));
    free(r);
}

/* A TCP share's count of new connections in its current minute (one per
 * share, not per redeemer link: the share's limit is the share's). */
typedef struct reach_share_window {
    struct reach_share_window *next;
    char share_id[HUB_ID_SIZE];
    hub_share_window_t w;
} reach_share_window_t;

static hub_share_window_t *share_window(hub_runtime_t *rt, const char *share_id, int64_t now)
{
    reach_share_window_t **pp = &rt->share_windows;
    while (*pp) {
        reach_share_window_t *w = *pp;
        if (!strcmp(w->share_id, share_id))
            return &w->w;
        if (now - w->w.start_ms >= 2 * HUB_SHARE_WINDOW_MS) { /* stale: forget it */
            *pp = w->next;
            free(w);
            continue;
        }
        pp = &w->next;
    }
    reach_share_window_t *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    snprintf(w->share_id, sizeof(w->share_id), "%s", share_id);
    w->next = rt->share_windows;
    rt->share_windows = w;
    return &w->w;
}

/* Whether tunnel protocol `p` is shared through reach (TCP-like) rather
 * than on the HTTP edge; UDP tunnels are not shared. */
static bool shared_by_reach(int p)
{
    return p != HUB_PROTO_UDP && !hub_protocol_on_http_edge(p);
}

/* Why share `s` (just read) admits nothing now, or NULL. */
static const char *share_dead(hub_runtime_t *rt, const hub_share_t *s, uint32_t *code)
{
    *code = CN_RST_GONE;
    if (s->revoked_at != HUB_TIME_NONE)
        return "share revoked";
    if (s->expires_at != HUB_TIME_NONE && hub_store_now(rt->cfg.store) >= s->expires_at)
        return "share expired";
    return NULL;
}

/* A share redeemer reaches its one tunnel (checked first, in check()) while
 * the share lives, within its new connections per minute. Why not (and
 * the code), or NULL. */
static const char *share_check(hub_runtime_t *rt, session_t *s, uint32_t *code)
{
    hub_share_t *sh = calloc(1, sizeof(*sh));
    const char *why = "out of memory";
    if (!sh)
        return why;
    if (hub_share_cache_share_get(rt->cache, rt->cfg.store, s->workspace_id, s->agent_id, sh) < 0) {
        *code = CN_RST_GONE;
        why = "share gone";
    } else if (!(why = share_dead(rt, sh, code))) {
        int64_t now = hub_store_now(rt->cfg.store);
        hub_share_window_t *w = share_window(rt, sh->id, now);
        if (!w || !hub_share_window_take(w, sh->rate_limit, now, NULL)) {
            *code = CN_RST_LIMIT;
            why = "share rate limit: new connections per minute";
        }
    }
    free(sh);
    return why;
}

/* Why a reach of tunnel `ref` from session `s` is refused (and the code),
 * or NULL with *t filled and *to set to the exposing agent's link. */
static const char *check(hub_runtime_t *rt, session_t *s, const uint8_t *ref, size_t ref_len,
                         hub_tunnel_t *t, session_t **to, uint32_t *code)
{
    char id[HUB_ID_SIZE];
    *code = CN_RST_REFUSED;
    if (!ref || ref_len != HUB_ID_SIZE - 1)
        return "unknown tunnel";
    memcpy(id, ref, ref_len);
    id[ref_len] = '\0';
    /* A share names one tunnel; any other is as unknown as a missing one,
     * and so is another workspace's. */
    if (s->share && strcmp(id, s->share_tunnel) != 0)
        return "unknown tunnel";
    if (!hub_uuid_valid(id) || hub_store_tunnel_get(rt->cfg.store, s->workspace_id, id, t) < 0)
        return "unknown tunnel";
    if (s->share && !shared_by_reach(t->protocol))
        return "unknown tunnel";
    if (t->status == HUB_TUNNEL_PAUSED) {
        *code = CN_RST_PAUSED;
        return "tunnel paused";
    }
    if (t->status == HUB_TUNNEL_EXPIRED) {
        *code = CN_RST_GONE;
        return "tunnel expired";
    }
    *to = hub_agents_route(rt, t->agent_id, t->id);
    if (!*to) {
        *code = CN_RST_GONE;
        return "exposing agent offline";
    }
    if (rt->conns >= rt->cfg.max_conns) {
        *code = CN_RST_LIMIT;
        return "hub connection limit";
    }
    /* Last, so that only connections that would open count against the
     * share's limit. */
    return s->share ? share_check(rt, s, code) : NULL;
}

void hub_reach_open(hub_runtime_t *rt, session_t *s, uint32_t id, const uint8_t *ref,
                    size_t ref_len)
{
    cn_mux_t *mux = cn_link_mux(s->link);
    hub_tunnel_t t = {0};
    session_t *to = NULL;
    uint32_t code;
    const char *why = check(rt, s, ref, ref_len, &t, &to, &code);
    reach_t *r = NULL;
    if (why)
        goto refuse;
    const uint8_t *key = cn_link_peer_key(s->link);
    char b64[CN_ID_KEY_B64URL_SIZE];
    char meta[256];
    code = CN_RST_INTERNAL;
    why = "out of memory";
    r = calloc(1, sizeof(*r));
    if (!key || !r)
        goto refuse;
    cn_id_key_to_b64url(key, b64);
    /* The exposing agent's end-to-end handshake accepts only this key. */
    int mlen = snprintf(meta, sizeof(meta),
                        "{\"reach\":{\"agentId\":\"%s\",\"workspaceId\":\"%s\",\"key\":\"%s\"%s}}",
                        s->agent_id, s->workspace_id, b64, s->share ? ",\"share\":true" : "");
    r->rt = rt;
    snprintf(r->tunnel_id, sizeof(r->tunnel_id), "%s", t.id);
    snprintf(r->to_agent, sizeof(r->to_agent), "%s", t.agent_id);
    snprintf(r->from_agent, sizeof(r->from_agent), "%s", s->agent_id);
    if (s->share)
        snprintf(r->share_id, sizeof(r->share_id), "%s", s->agent_id);
    hub_relay_config_t rc = {
        .from = {.mux = mux, .flush = link_flush, .link = s->link},
        .from_id = id,
        .to = {.mux = cn_link_mux(to->link), .flush = link_flush, .link = to->link},
        .kind = CN_KIND_RELAY,
        .ref = (const uint8_t *)t.id,
        .ref_len = strlen(t.id),
        .meta = (const uint8_t *)meta,
        .meta_len = (size_t)mlen,
        .done = reach_done,
        .tap = getenv("CONNECT_HUB_RELAY_DUMP") ? dump_tap : NULL,
        .ctx = r,
    };
    int err = 0;
    r->relay = hub_relay_start(&rc, &err);
    if (!r->relay) {
        code = CN_RST_LIMIT;
        why = "the exposing agent's link takes no new stream";
        cn_log_warn("tunnel %s: reach from agent %s: cannot open a stream: %s", t.id, s->agent_id,
                    cn_strerror(err));
        goto refuse;
    }
    r->next = rt->reaches;
    rt->reaches = r;
    rt->conns++;
    cn_log_info("tunnel %s (%s): reach from agent %s", t.id, t.name, s->agent_id);
    hub_tunnel_clear(&t);
    return;
refuse:
    /* One line per refused connection, naming tunnel and agent. */
    cn_log_info("tunnel %s: reach from agent %s refused: %s", t.id[0] ? t.id : "(unknown)",
                s->agent_id, why);
    free(r);
    hub_tunnel_clear(&t);
    cn_mux_reject(mux, id, code, why);
    cn_link_flush(s->link);
}

void hub_reach_sync_agent(hub_runtime_t *rt, const char *agent_id, const hub_tunnel_list_t *list,
                          const char *only)
{
    for (reach_t *r = rt->reaches; r; r = r->next) {
        if (strcmp(r->to_agent, agent_id) || (only && strcmp(r->tunnel_id, only)))
            continue;
        if (!hub_tunnel_list_find(list, r->tunnel_id) && r->relay) {
            /* Deleted: open reach connections end now. */
            cn_log_info("tunnel %s deleted: closing a reach from agent %s", r->tunnel_id,
                        r->from_agent);
            hub_relay_abort(r->relay, CN_RST_GONE);
        }
    }
}

void hub_reach_link_down(hub_runtime_t *rt, cn_link_t *link)
{
    reach_t *next;
    for (reach_t *r = rt->reaches; r; r = next) {
        next = r->next; /* r may be freed by its relay's done */
        hub_relay_mux_gone(r->relay, cn_link_mux(link));
    }
}

int hub_reach_share_admit(hub_runtime_t *rt, session_t *s, const char *token)
{
    hub_share_t *sh = calloc(1, sizeof(*sh));
    hub_tunnel_t t = {0};
    uint32_t code;
    const char *why = "out of memory";
    int rc = CN_EREFUSED;
    if (!sh)
        goto out;
    why = "unknown share token";
    int trc = 0;
    if (strlen(token) >= HUB_SHARE_TOKEN_SIZE ||
        hub_share_cache_share_route(rt->cache, rt->cfg.store, token, sh, &t, &trc) < 0)
        goto out;
    if ((why = share_dead(rt, sh, &code)))
        goto out;
    why = "the shared tunnel is not a TCP tunnel";
    if (trc < 0 || !shared_by_reach(t.protocol))
        goto out;
    s->share = 1;
    s->serve_all = 0;
    s->nserved = 0;
    snprintf(s->agent_id, sizeof(s->agent_id), "%s", sh->id);
    snprintf(s->workspace_id, sizeof(s->workspace_id), "%s", sh->workspace_id);
    snprintf(s->share_tunnel, sizeof(s->share_tunnel), "%s", t.id);
    unsigned links = 0;
    for (const session_t *o = rt->sessions; o; o = o->next)
        links += o->share && !strcmp(o->agent_id, sh->id);
    why = "the share already holds its cap of redeemer links";
    if (links >= rt->cfg.max_links_per_agent)
        goto out;
    why = NULL;
    rc = 0;
out:
    if (why)
        cn_log_warn("agent endpoint: share redemption refused%s%s: %s",
                    sh && sh->id[0] ? " for share " : "", sh && sh->id[0] ? sh->id : "", why);
    hub_tunnel_clear(&t);
    free(sh);
    return rc;
}

void hub_reach_share_sweep(hub_runtime_t *rt)
{
    /* Each live share is read once per sweep, however many streams and
     * links it holds: they are few, and the sweep runs once a second. */
    char dead[16][HUB_ID_SIZE];
    size_t ndead = 0;
    hub_share_t *sh = calloc(1, sizeof(*sh));
    if (!sh)
        return;
    for (session_t *s = rt->sessions; s && ndead < 16; s = s->next) {
        if (!s->share)
            continue;
        bool seen = false;
        for (size_t i = 0; i < ndead && !seen; i++)
            seen = !strcmp(dead[i], s->agent_id);
        uint32_t code;
        if (!seen && (hub_share_cache_share_get(rt->cache, rt->cfg.store, s->workspace_id,
                                                s->agent_id, sh) == CN_ENOTFOUND ||
                      (sh->id[0] && share_dead(rt, sh, &code))))
            snprintf(dead[ndead++], HUB_ID_SIZE, "%s", s->agent_id);
        memset(sh->id, 0, sizeof(sh->id));
    }
    free(sh);
    for (size_t i = 0; i < ndead; i++) {
        reach_t *next;
        for (reach_t *r = rt->reaches; r; r = next) {
            next = r->next; /* r may be freed by its relay's done */
            if (!strcmp(r->share_id, dead[i]) && r->relay) {
                cn_log_info("share %s ended: closing a reach of tunnel %s", dead[i], r->tunnel_id);
                hub_relay_abort(r->relay, CN_RST_GONE);
            }
        }
        session_t *snext;
        for (session_t *s = rt->sessions; s; s = snext) {
            snext = s->next; /* in case the close is synchronous */
            if (s->share && !strcmp(s->agent_id, dead[i]))
                cn_link_close(s->link, "share revoked or expired");
        }
    }
}

void hub_reach_free_all(hub_runtime_t *rt)
{
    while (rt->share_windows) {
        reach_share_window_t *w = rt->share_windows;
        rt->share_windows = w->next;
        free(w);
    }
    while (rt->reaches) {
        reach_t *r = rt->reaches;
        rt->reaches = r->next;
        free(r);
    }
}
