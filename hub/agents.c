/* The agent endpoint (cn_link server role on /agent) and the registry of
 * connected agents' links (see runtime.h). */
#include "runtime_internal.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cn_ctlpage.h"
#include "cn_err.h"
#include "cn_frame.h"
#include "cn_link.h"
#include "cn_log.h"
#include "cn_pipe.h"
#include "events.h"
#include "secrets.h"
#include "tunnels.h"

static int serves(const session_t *s, const char *tunnel_id)
{
    if (s->serve_all)
        return 1;
    for (size_t i = 0; i < s->nserved; i++)
        if (!strcmp(s->served[i], tunnel_id))
            return 1;
    return 0;
}

/* The newest live link of the agent that serves the tunnel (sessions are
 * kept newest first, so a reconnecting agent wins over a stale link that
 * has not timed out yet). tunnel_id NULL: any link of the agent. */
session_t *hub_agents_route(hub_runtime_t *rt, const char *agent_id, const char *tunnel_id)
{
    for (session_t *s = rt->sessions; s; s = s->next)
        if (s->admitted && !strcmp(s->agent_id, agent_id) && (!tunnel_id || serves(s, tunnel_id)) &&
            cn_link_is_established(s->link))
            return s;
    return NULL;
}

static json_t *tunnel_json(const hub_tunnel_t *t)
{
    json_t *j = json_pack("{s:s,s:s,s:{s:s,s:i},s:s,s:s}", "id", t->id, "name", t->name, "target",
                          "host", t->target_host, "port", (int)t->target_port, "protocol",
                          t->plugin[0] ? t->plugin : hub_protocol_name(t->protocol), "status",
                          hub_tunnel_status_name(t->status));
    if (j && t->protocol == HUB_PROTO_HTTPS && t->metadata) {
        /* How the agent verifies an https target (docs/http-edge.md). */
        json_t *meta = json_loads(t->metadata, 0, NULL);
        json_t *tls = json_object_get(meta, "tls");
        if (json_is_object(tls))
            json_object_set(j, "tls", tls);
        json_decref(meta);
    }
    return j;
}

/* The link's allow-list as a JSON array (NULL on store failure): the
 * agent's tunnels that the link serves. A link that named its tunnels
 * (`connect expose`, an app-server or SDK tunnel) learns of those alone:
 * with K such links of one agent, every tunnel made or deleted told each
 * of them (K lists, or K entries, per change of any). */
static json_t *agent_tunnels(const session_t *s)
{
    hub_runtime_t *rt = s->rt;
    hub_tunnel_filter_t f = {.agent_id = s->agent_id};
    hub_tunnel_list_t list = {0};
    if (hub_store_tunnel_list(rt->cfg.store, s->workspace_id, &f, &list) < 0)
        return NULL;
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < list.count; i++)
        if (serves(s, list.items[i].id))
            json_array_append_new(arr, tunnel_json(&list.items[i]));
    hub_tunnel_list_free(&list);
    return arr;
}

static int send_control(session_t *s, json_t *msg)
{
    if (!msg)
        return CN_ENOMEM;
    int rc = cn_mux_send_control(cn_link_mux(s->link), msg);
    if (rc < 0)
        cn_log_warn("agent %s: could not queue control message: %s", s->agent_id, cn_strerror(rc));
    json_decref(msg);
    cn_link_flush(s->link);
    return rc;
}

#define LIST_RETRY_MS 250 /* a list that found the queue full goes again */

static int send_tunnels(session_t *s, json_t *hello);

static void list_due_cb(lws_sorted_usec_list_t *sul)
{
    session_t *s = lws_container_of(sul, session_t, sul_list);
    s->list_due = 0;
    send_tunnels(s, NULL);
}

/* Sends the tunnel list again after `ms` (a list the link's queue had no
 * room for), once however many changes come meanwhile. Changes that open a
 * tunnel (made, edited, resumed) send at once, as a list or as the entry
 * (hub_agents_tunnel_delta), so a stream opened for a request that follows
 * an API answer comes behind it on the link (a resumed tunnel is open at
 * the agent when its first connection arrives); coalescing them (tried:
 * to the next loop turn) let a resumed tunnel's first requests fail. */
static void list_due(session_t *s, unsigned ms)
{
    if (s->list_due)
        return;
    s->list_due = 1;
    lws_sul_schedule(s->rt->ctx, 0, &s->sul_list, list_due_cb, (lws_usec_t)ms * LWS_US_PER_MS);
}

/* A message to the link found its queue full and was dropped: the whole
 * list goes LIST_RETRY_MS later and carries the change. Until a whole
 * list has gone the link is `behind`: its agent may hold a tunnel the hub
 * deleted (a lost tunnel_remove) besides every tunnel the hub has, and one
 * more entry (an upsert of a new tunnel) could take it past the 4,096 it
 * holds at most (AGENT_ALLOWLIST_MAX, the hub's cap per agent too), which
 * closes the link and every stream on it (hub_agents_tunnel_delta). */
static void lost(session_t *s)
{
    s->behind = 1;
    list_due(s, LIST_RETRY_MS);
}

/* A whole list is queued: it was read from the store now, so the agent
 * holds what the hub has once it arrives, and a list due later would only
 * say the same again. */
static void list_went(session_t *s)
{
    s->behind = 0;
    if (s->list_due) {
        lws_sul_cancel(&s->sul_list);
        s->list_due = 0;
    }
}

/* Sends the agent's tunnel list: on `hello` (when given, which this sends
 * too) or as a "tunnels" message. A list too long for one frame goes as
 * tunnels_page messages right behind (docs/agent-protocol.md, "Long tunnel
 * lists"); the hello then says so with "tunnelsPaged" and carries none.
 * A list the link's queue had no room for is sent again later (the agent
 * keeps its previous list meanwhile). */
static int send_tunnels(session_t *s, json_t *hello)
{
    json_t *arr = agent_tunnels(s);
    if (!arr) {
        cn_log_warn("agent %s: could not read its tunnels: %s", s->agent_id,
                    hub_store_errmsg(s->rt->cfg.store));
        return send_control(s, hello);
    }
    int rc = 0;
    hub_metrics_t *metrics = s->rt->cfg.metrics;
    if (json_dumpb(arr, NULL, 0, JSON_COMPACT) <= CN_CTLPAGE_BUDGET) {
        size_t n = json_array_size(arr);
        if (hello) {
            json_object_set_new(hello, "tunnels", arr);
            rc = send_control(s, hello);
        } else {
            rc = send_control(s, json_pack("{s:s,s:o}", "type", "tunnels", "tunnels", arr));
        }
        if (rc == 0) {
            hub_metrics_tunnel_entries_sent(metrics, HUB_TM_LIST, n);
            list_went(s);
        }
        if (rc == CN_EAGAIN && !hello)
            lost(s);
        return rc;
    }
    if (hello) {
        json_object_set_new(hello, "tunnelsPaged", json_true());
        rc = send_control(s, hello);
        if (rc < 0) {
            json_decref(arr);
            return rc;
        }
    }
    size_t n = json_array_size(arr), page = 0;
    bool msg_ok = true; /* every page could be built */
    for (size_t i = 0; i < n;) {
        size_t k = cn_ctlpage_take(arr, i, CN_CTLPAGE_BUDGET);
        if (!k) {
            /* Cannot happen with the API's field limits; never a page
             * that could not be sent. */
            cn_log_warn("agent %s: tunnel entry %zu too long for a page, left out", s->agent_id, i);
            json_array_remove(arr, i);
            n--;
            continue;
        }
        json_t *msg = cn_ctlpage_msg(arr, i, k, page++, i + k < n);
        i += k;
        if (!msg) {
            cn_log_warn("agent %s: out of memory sending its tunnel list", s->agent_id);
            msg_ok = false;
            break;
        }
        rc = cn_mux_send_control(cn_link_mux(s->link), msg);
        json_decref(msg);
        if (rc == 0)
            hub_metrics_tunnel_entries_sent(metrics, HUB_TM_LIST, k);
        if (rc < 0) {
            /* The agent keeps its previous list until a whole one arrives;
             * the next list starts at page 0 again. */
            cn_log_warn("agent %s: could not queue tunnel list page %zu: %s%s", s->agent_id,
                        page - 1, cn_strerror(rc), rc == CN_EAGAIN ? " (sent again soon)" : "");
            if (rc == CN_EAGAIN)
                lost(s);
            break;
        }
    }
    if (rc == 0 && msg_ok)
        list_went(s);
    cn_link_flush(s->link);
    json_decref(arr);
    return rc;
}

/* Brings the agent's state and tunnels in line with its live links (all
 * admitted sessions of the agent still in the registry). */
static void reconcile(hub_runtime_t *rt, const char *ws, const char *agent_id)
{
    size_t n = 0;
    for (session_t *s = rt->sessions; s; s = s->next)
        if (s->admitted && !strcmp(s->agent_id, agent_id))
            n++;
    hub_reconcile_link_t *links = n ? calloc(n, sizeof(*links)) : NULL;
    if (n && !links) {
        cn_log_warn("agent %s: out of memory reconciling its tunnels", agent_id);
        return;
    }
    size_t i = 0;
    for (session_t *s = rt->sessions; s && i < n; s = s->next)
        if (s->admitted && !strcmp(s->agent_id, agent_id))
            links[i++] = (hub_reconcile_link_t){
                .agent_id = s->agent_id,
                .serve_all = s->serve_all,
                .served = (const char(*)[HUB_ID_SIZE])s->served,
                .nserved = s->nserved,
            };
    hub_live_t live;
    hub_runtime_live(rt, &live);
    if (hub_tunnels_reconcile_agent(rt->cfg.store, &live, ws, agent_id, links, n) < 0)
        cn_log_warn("agent %s: could not update its tunnels: %s", agent_id,
                    hub_store_errmsg(rt->cfg.store));
    free(links);
}

bool hub_agents_served_probe(void *ctx, const char *agent_id, const char *tunnel_id)
{
    return hub_agents_route(ctx, agent_id, tunnel_id) != NULL;
}

/* ---- agent endpoint ----------------------------------------------------- */

/* Checks who the agent is: an enrollment or a known key. Fills s and, for
 * an enrollment, a fresh API token for the agent's CLI. */
static int admit(hub_runtime_t *rt, cn_link_t *link, session_t *s, char *api_token)
{
    size_t plen = 0;
    const uint8_t *payload = cn_link_peer_payload(link, &plen);
    const uint8_t *pk = cn_link_peer_key(link);
    json_error_t jerr;
    json_t *hello = payload && plen ? json_loadb((const char *)payload, plen, 0, &jerr) : NULL;
    int rc = CN_EREFUSED;
    hub_agent_t agent;
    const char *enroll = json_string_value(json_object_get(hello, "enroll"));
    const char *want_id = json_string_value(json_object_get(hello, "agentId"));
    const char *share = json_string_value(json_object_get(hello, "share"));
    if (!pk || !json_is_object(hello))
        goto out;
    if (share) {
        /* A share redeemer: its key is its own fresh one, vouched for by
         * nothing but the share token (docs/security.md). */
        rc = hub_reach_share_admit(rt, s, share);
        goto out;
    }
    if (enroll) {
        rc = hub_store_agent_enroll(rt->cfg.store, enroll, pk, &agent);
        if (rc < 0) {
            cn_log_warn("agent endpoint: enrollment refused: %s", hub_store_errmsg(rt->cfg.store));
            goto out;
        }
        char name[64];
        snprintf(name, sizeof(name), "agent %s", agent.id);
        /* Scoped to this agent and deleted with it (docs/security.md). */
        rc = hub_store_token_create(rt->cfg.store, agent.workspace_id, name, HUB_SCOPE_AGENT,
                                    agent.id, api_token, NULL);
        if (rc < 0)
            goto out;
        cn_log_info("agent %s enrolled in workspace %s", agent.id, agent.workspace_id);
    } else {
        rc = hub_store_agent_find_by_key(rt->cfg.store, pk, &agent);
        if (rc < 0 || !want_id || strcmp(want_id, agent.id)) {
            char fp[CN_CHAN_FINGERPRINT_SIZE];
            cn_chan_fingerprint(pk, fp);
            cn_log_warn("agent endpoint: unknown agent key %s refused", fp);
            rc = CN_EREFUSED;
            goto out;
        }
    }
    memcpy(s->agent_id, agent.id, sizeof(s->agent_id));
    memcpy(s->workspace_id, agent.workspace_id, sizeof(s->workspace_id));
    /* A newer agent applies one tunnel's status change by itself. */
    s->tunnel_status = json_is_true(json_object_get(hello, "tunnelStatus"));
    /* ... and one tunnel made, edited or deleted (unless the hub plays
     * one before the deltas, hub_runtime_config_t.no_tunnel_delta). */
    s->tunnel_delta =
        !rt->cfg.no_tunnel_delta && json_is_true(json_object_get(hello, "tunnelDelta"));
    /* "tunnels": [ids] narrows what this link serves; absent = all. */
    json_t *only = json_object_get(hello, "tunnels");
    s->serve_all = !json_is_array(only);
    if (!s->serve_all) {
        size_t i;
        json_t *v;
        json_array_foreach(only, i, v)
        {
            if (json_is_string(v) && strlen(json_string_value(v)) < HUB_ID_SIZE &&
                s->nserved < MAX_SERVED)
                snprintf(s->served[s->nserved++], HUB_ID_SIZE, "%s", json_string_value(v));
        }
    }
    rc = 0;
out:
    json_decref(hello);
    return rc;
}

static int link_established(cn_link_t *link, void *ctx)
{
    hub_runtime_t *rt = ctx;
    char api_token[HUB_TOKEN_STR_SIZE] = "";
    session_t *s = calloc(1, sizeof(*s));
    if (!s)
        return CN_ENOMEM;
    s->rt = rt;
    s->link = link;
    int rc = admit(rt, link, s, api_token);
    if (rc < 0) {
        free(s);
        return rc;
    }
    if (s->share) {
        /* Not an agent: not counted, routed or reconciled; it may only open
         * reach streams to the shared tunnel. */
        s->next = rt->sessions;
        rt->sessions = s;
        cn_link_set_user(link, s);
        cn_log_info("share %s: redeemer connected (%s) for tunnel %s", s->agent_id,
                    cn_link_cipher(link), s->share_tunnel);
        send_control(s, json_pack("{s:s,s:s,s:s,s:[]}", "type", "hello", "shareId", s->agent_id,
                                  "workspaceId", s->workspace_id, "tunnels"));
        s->hello_sent = 1;
        return 0;
    }
    unsigned mine = 0;
    for (const session_t *o = rt->sessions; o; o = o->next)
        if (o->admitted && !strcmp(o->agent_id, s->agent_id))
            mine++;
    if (mine >= rt->cfg.max_links_per_agent) {
        /* A stolen key or a runaway script cannot pile up links (each holds
         * buffers) nor push the agent's real links out. */
        cn_log_warn("agent %s: link refused, it already holds %u links (the cap)", s->agent_id,
                    mine);
        sodium_memzero(api_token, sizeof(api_token));
        free(s);
        return CN_EEXHAUSTED;
    }
    /* Newest first: a reconnecting agent (dirty disconnect) gets the
     * streams at once, before its stale link times out. */
    s->admitted = 1;
    s->next = rt->sessions;
    rt->sessions = s;
    rt->online++;
    cn_link_set_user(link, s);
    cn_log_info("agent %s connected (%s, serving %s)", s->agent_id, cn_link_cipher(link),
                s->serve_all ? "all its tunnels" : "named tunnels");
    reconcile(rt, s->workspace_id, s->agent_id);

    json_t *hello = json_pack("{s:s,s:s,s:s}", "type", "hello", "agentId", s->agent_id,
                              "workspaceId", s->workspace_id);
    if (hello && api_token[0])
        json_object_set_new(hello, "apiToken", json_string(api_token));
    sodium_memzero(api_token, sizeof(api_token));
    if (hello)
        send_tunnels(s, hello);
    s->hello_sent = 1;
    return 0;
}

/* A link that ends before the hub admitted it failed its handshake. */
static enum hub_metrics_handshake handshake_failure(cn_link_reason_t r)
{
    switch (r) {
    case CN_LINK_HANDSHAKE_TIMEOUT:
        return HUB_HS_TIMEOUT;
    case CN_LINK_CHANNEL_FAILED:
        return HUB_HS_CHANNEL;
    case CN_LINK_REFUSED:
        return HUB_HS_REFUSED;
    case CN_LINK_WEBSOCKET_FAILED:
        return HUB_HS_WEBSOCKET;
    default:
        return HUB_HS_OTHER;
    }
}

static void link_closed(cn_link_t *link, void *ctx, int err, const char *why)
{
    hub_runtime_t *rt = ctx;
    session_t *s = cn_link_user(link);
    hub_reach_link_down(rt, link);
    if (!s) {
        cn_link_reason_t r = cn_link_close_reason(link);
        if (r != CN_LINK_CLOSED_LOCALLY) /* not the hub shutting down */
            hub_metrics_handshake_failure(rt->cfg.metrics, handshake_failure(r));
        return;
    }
    for (session_t **pp = &rt->sessions; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    cn_log_info("%s %s disconnected: %s", s->share ? "share redeemer of" : "agent", s->agent_id,
                why);
    if (s->admitted) {
        rt->online--;
        /* s has left the registry: the agent's other links decide. */
        reconcile(rt, s->workspace_id, s->agent_id);
    }
    lws_sul_cancel(&s->sul_list);
    free(s);
}

/* Agents open streams only to reach a tunnel (edge_reach.c). */
static void agent_open(void *ctx, uint32_t id, uint8_t kind, const uint8_t *ref, size_t ref_len,
                       const uint8_t *meta, size_t meta_len)
{
    session_t *s = cn_link_user(ctx);
    if (s && (s->admitted || s->share) && kind == CN_KIND_RELAY) {
        hub_reach_open(s->rt, s, id, ref, ref_len);
        return;
    }
    cn_mux_reject(cn_link_mux(ctx), id, CN_RST_REFUSED, "not supported");
    cn_link_flush(ctx);
}

/* {"type":"tunnel_error","tunnelId":ID,"error":TEXT}: the agent will not
 * serve one of its tunnels (its local target policy refuses the target):
 * the tunnel goes to error with that lastError. Only for tunnels of this
 * agent that this link serves, and not over paused or expired ones. */
static void agent_tunnel_error(session_t *s, const json_t *msg)
{
    const char *id = json_string_value(json_object_get(msg, "tunnelId"));
    const char *why = json_string_value(json_object_get(msg, "error"));
    hub_tunnel_t t = {0};
    if (!id || !why || !hub_uuid_valid(id) || !serves(s, id) ||
        hub_store_tunnel_get(s->rt->cfg.store, s->workspace_id, id, &t) < 0)
        return;
    bool changed = false;
    hub_tunnel_t now = {0};
    if (!strcmp(t.agent_id, s->agent_id) &&
        (t.status == HUB_TUNNEL_ACTIVE || t.status == HUB_TUNNEL_CONNECTING)) {
        cn_log_warn("agent %s refuses tunnel %s (%s): %.200s", s->agent_id, t.id, t.name, why);
        if (hub_tunnels_set_status(s->rt->cfg.store, s->workspace_id, t.id, HUB_TUNNEL_ERROR,
                                   "refused by agent", why, &now, &changed) < 0)
            cn_log_warn("tunnel %s: cannot record the agent's refusal: %s", t.id,
                        hub_store_errmsg(s->rt->cfg.store));
    }
    hub_tunnel_clear(&t);
    if (changed)
        hub_runtime_tunnel_status_changed(s->rt, &now);
    hub_tunnel_clear(&now);
}

/* lastError of a tunnel whose target failed its health probe. */
#define HEALTH_ERROR_PREFIX "target unhealthy: "

/* {"type":"tunnel_health","tunnelId":ID,"ok":BOOL,"error":TEXT}: the
 * agent's periodic probe of the target changed its verdict. Down moves an
 * active (or connecting) tunnel to error with lastError "target unhealthy:
 * TEXT"; up moves a tunnel back to active only from an error that a probe
 * caused. Each change is a tunnel.status_changed event. Only for tunnels of
 * this agent that this link serves. */
static void agent_tunnel_health(session_t *s, const json_t *msg)
{
    const char *id = json_string_value(json_object_get(msg, "tunnelId"));
    const json_t *ok = json_object_get(msg, "ok");
    const char *why = json_string_value(json_object_get(msg, "error"));
    hub_tunnel_t t = {0};
    if (!id || !json_is_boolean(ok) || !hub_uuid_valid(id) || !serves(s, id) ||
        hub_store_tunnel_get(s->rt->cfg.store, s->workspace_id, id, &t) < 0)
        return;
    bool changed = false;
    int rc = 0;
    hub_tunnel_t now = {0};
    if (strcmp(t.agent_id, s->agent_id) != 0) {
        /* not this agent's */
    } else if (!json_is_true(ok) &&
               (t.status == HUB_TUNNEL_ACTIVE || t.status == HUB_TUNNEL_CONNECTING)) {
        char err[HUB_LAST_ERROR_MAX];
        snprintf(err, sizeof(err), HEALTH_ERROR_PREFIX "%.900s", why ? why : "no reason given");
        cn_log_warn("tunnel %s (%s): %s", t.id, t.name, err);
        rc = hub_tunnels_set_status(s->rt->cfg.store, s->workspace_id, t.id, HUB_TUNNEL_ERROR,
                                    "target unhealthy", err, &now, &changed);
    } else if (json_is_true(ok) && t.status == HUB_TUNNEL_ERROR && t.last_error &&
               !strncmp(t.last_error, HEALTH_ERROR_PREFIX, strlen(HEALTH_ERROR_PREFIX))) {
        cn_log_info("tunnel %s (%s): target healthy again", t.id, t.name);
        rc = hub_tunnels_set_status(s->rt->cfg.store, s->workspace_id, t.id, HUB_TUNNEL_ACTIVE,
                                    "target healthy", NULL, &now, &changed);
    }
    if (rc < 0)
        cn_log_warn("tunnel %s: cannot record the agent's health report: %s", t.id,
                    hub_store_errmsg(s->rt->cfg.store));
    hub_tunnel_clear(&t);
    /* A verdict neither opens nor closes the tunnel for streams: the agent
     * needs its new status, not its whole list again (O(tunnels) per
     * verdict, O(tunnels^2) when a target behind them all flaps). */
    if (changed)
        hub_runtime_tunnel_status_changed(s->rt, &now);
    hub_tunnel_clear(&now);
}

static void agent_control(void *ctx, const uint8_t *payload, size_t len)
{
    session_t *s = cn_link_user(ctx);
    json_t *msg = s ? json_loadb((const char *)payload, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    const char *type = json_string_value(json_object_get(msg, "type"));
    if (s && type && !strcmp(type, "tunnel_error"))
        agent_tunnel_error(s, msg);
    else if (s && type && !strcmp(type, "tunnel_health"))
        agent_tunnel_health(s, msg);
    else
        cn_log_debug("agent %s: control message (%zu bytes) ignored", s ? s->agent_id : "?", len);
    json_decref(msg);
}

void hub_agents_changed(hub_runtime_t *rt, const char *ws, const char *agent_id, bool gone)
{
    (void)ws; /* the session knows its workspace */
    for (session_t *s = rt->sessions; s; s = s->next) {
        if (!s->admitted || strcmp(s->agent_id, agent_id))
            continue;
        if (gone) {
            cn_log_info("agent %s deleted: closing its link", agent_id);
            cn_link_close(s->link, "agent deleted");
        } else if (s->hello_sent) {
            send_tunnels(s, NULL);
        }
    }
}

/* One tunnel's new status to a link that takes tunnel_status. */
static void send_status(session_t *s, const char *tunnel_id, enum hub_tunnel_status status)
{
    if (s->list_due)
        return; /* a whole list goes soon, read from the store then */
    /* On the same ordered CONTROL stream as the lists, so it always
     * applies to the list sent before it. */
    int rc = send_control(s, json_pack("{s:s,s:s,s:s}", "type", "tunnel_status", "tunnelId",
                                       tunnel_id, "status", hub_tunnel_status_name(status)));
    if (rc == 0)
        hub_metrics_tunnel_entries_sent(s->rt->cfg.metrics, HUB_TM_STATUS, 1);
    else if (rc == CN_EAGAIN)
        lost(s); /* the whole list then carries it */
}

/* Whether a change of tunnel `tunnel_id` of agent `agent_id` goes to link
 * `s`: an admitted link of that agent, greeted, that serves the tunnel
 * (its list holds only those, agent_tunnels). */
static bool told(const session_t *s, const char *agent_id, const char *tunnel_id)
{
    return s->admitted && s->hello_sent && !strcmp(s->agent_id, agent_id) && serves(s, tunnel_id);
}

void hub_agents_tunnel_status(hub_runtime_t *rt, const char *agent_id, const char *tunnel_id,
                              enum hub_tunnel_status status)
{
    for (session_t *s = rt->sessions; s; s = s->next) {
        if (!told(s, agent_id, tunnel_id))
            continue;
        if (!s->tunnel_status) {
            /* An older agent knows whole lists only: one on the next loop
             * turn carries every status changed until then (a TTL sweep,
             * ports failing as an agent comes online), not one list per
             * tunnel. Safe to defer: no status sent this way opens a
             * tunnel that a stream could need at once (a resume goes
             * at once, hub_agents_tunnel_delta). */
            list_due(s, 0);
            continue;
        }
        send_status(s, tunnel_id, status);
    }
}

void hub_agents_statuses(hub_runtime_t *rt, const char *agent_id, const hub_tunnel_list_t *moved)
{
    for (session_t *s = rt->sessions; s; s = s->next) {
        size_t mine = 0;
        for (size_t i = 0; i < moved->count; i++)
            mine += told(s, agent_id, moved->items[i].id);
        if (!mine)
            continue;
        /* At once, as before tunnel_status; a hub playing one before the
         * deltas (no_tunnel_delta) sends every link the list here, as
         * those hubs did. */
        if (!s->tunnel_status || rt->cfg.no_tunnel_delta) {
            send_tunnels(s, NULL);
            continue;
        }
        for (size_t i = 0; i < moved->count; i++)
            if (serves(s, moved->items[i].id))
                send_status(s, moved->items[i].id, moved->items[i].status);
    }
}

void hub_agents_tunnel_delta(hub_runtime_t *rt, const char *agent_id, const char *tunnel_id,
                             const hub_tunnel_t *t)
{
    for (session_t *s = rt->sessions; s; s = s->next) {
        if (!told(s, agent_id, tunnel_id))
            continue;
        /* An upsert to a link that is `behind` (a message to it was lost
         * to a full queue, lost()) goes as the whole list instead, at
         * once: its agent may still hold a tunnel deleted meanwhile, and
         * at 4,096 tunnels (the cap on both sides) one more entry would
         * make it close the link, cutting every stream on it. The list
         * replaces whatever the agent holds and carries this tunnel: a new
         * tunnel's first connection comes behind it, delayed by its
         * transit (78 ms for 4,096 tunnels in a release build,
         * test_agent_link.c), not refused. It is the list the retry would
         * have sent 250 ms later (list_went() cancels that one), so a loss
         * costs one list, as before, only sooner. Not chosen: holding the
         * deltas until the retry's list went would refuse a new tunnel's
         * connections for up to those 250 ms (the API answered, the agent
         * does not know the tunnel); the agent going over its bound
         * "while a list is coming" would give up AGENT_ALLOWLIST_MAX as a
         * hard bound, and agents already out would still close. A remove
         * goes as ever: it only shrinks. */
        if (!s->tunnel_delta || (t && s->behind)) {
            send_tunnels(s, NULL);
            continue;
        }
        /* At once: a stream opened for a request that follows the API's
         * answer comes behind it on the ordered CONTROL stream, so a new
         * or resumed tunnel is open at the agent when its first connection
         * arrives. The entry is whole, so it stands on whatever list the
         * agent holds; a list due later carries it too. */
        json_t *msg = t ? json_pack("{s:s,s:o}", "type", "tunnel_upsert", "tunnel", tunnel_json(t))
                        : json_pack("{s:s,s:s}", "type", "tunnel_remove", "tunnelId", tunnel_id);
        int rc = send_control(s, msg);
        if (rc == 0)
            hub_metrics_tunnel_entries_sent(rt->cfg.metrics, HUB_TM_DELTA, 1);
        else if (rc == CN_EAGAIN)
            lost(s); /* the whole list then carries it */
    }
}

int hub_agents_init(hub_runtime_t *rt)
{
    cn_stream_dispatch_callbacks(&rt->mux_cb);
    rt->mux_cb.on_open = agent_open;
    rt->mux_cb.on_control = agent_control;
    cn_link_server_config_t lc = {
        .path = "/agent",
        .binding = "",
        .static_sk = rt->cfg.keypair->secret_key,
        .mux_cb = &rt->mux_cb,
        .cb = {.on_established = link_established, .on_closed = link_closed},
        .ctx = rt,
        .max_links = rt->cfg.max_links,
        /* Every public connection to an agent's tunnels may be a stream on
         * one link: the mux's default (4,096) must not cap the tunnel below
         * --max-conns. The 1,024 more are reach and HTTP edge streams. */
        .mux = {.max_streams = rt->cfg.max_conns + 1024 > CN_MUX_DEFAULT_MAX_STREAMS
                                   ? rt->cfg.max_conns + 1024
                                   : CN_MUX_DEFAULT_MAX_STREAMS,
                .window = rt->cfg.stream_window,
                .window_update = rt->cfg.window_update},
        .flush_after_turn = 1, /* hub_server_run() calls cn_link_flush_turn() */
    };
    if (lc.mux.window || lc.mux.window_update) {
        uint32_t w = lc.mux.window ? lc.mux.window : CN_MUX_DEFAULT_WINDOW;
        cn_log_info("agent links: stream window %u bytes, credit returned every %u bytes", w,
                    lc.mux.window_update ? lc.mux.window_update : w / 4);
    }
    if (rt->cfg.no_tunnel_delta)
        cn_log_info("agent links: whole tunnel lists for every change, as a hub before "
                    "tunnel_upsert/tunnel_remove (CONNECT_HUB_TUNNEL_DELTA=0)");
    /* The configuration is ours and complete (the window checked by
     * cn_mux_window_valid() before): only memory can run out. */
    rt->links = cn_link_server_new(&lc, NULL, 0);
    return rt->links ? 0 : CN_ENOMEM;
}

void hub_agents_close_all(hub_runtime_t *rt)
{
    for (session_t *s = rt->sessions; s; s = s->next)
        cn_link_close(s->link, "hub shutting down");
}

void hub_agents_free_all(hub_runtime_t *rt)
{
    while (rt->sessions) {
        session_t *s = rt->sessions;
        rt->sessions = s->next;
        lws_sul_cancel(&s->sul_list);
        free(s);
    }
}
