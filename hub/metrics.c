/* The metrics registry and its Prometheus text rendering (see metrics.h). */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cn_buf.h"
#include "cn_err.h"

#define STATUS_MIN 100
#define STATUS_MAX 599
/* Rendering is bounded: even a hub at its tunnel caps renders far less. */
#define RENDER_MAX (64u * 1024 * 1024)
#define TUNNEL_ID_SIZE 37

/* Bytes of finished connections of one tunnel. */
typedef struct tunnel_bytes {
    char id[TUNNEL_ID_SIZE];
    uint64_t in, out;
} tunnel_bytes_t;

struct hub_metrics {
    uint64_t handshake[HUB_HS_COUNT];
    uint64_t http[STATUS_MAX - STATUS_MIN + 1];
    uint64_t share_reject[HUB_SHARE_REJ_COUNT];
    uint64_t delivery[HUB_WH_COUNT];
    uint64_t tunnel_entries[HUB_TM_COUNT];
    uint64_t refused[HUB_REF_COUNT];
    /* Kept short by rendering, which forgets deleted tunnels; a linear scan
     * per finished connection is cheap at the tunnel caps. */
    tunnel_bytes_t *bytes;
    size_t nbytes, capbytes;
};

const char *const hub_metrics_tunnel_statuses[] = {
    "connecting", "active", "paused", "error", "expired", NULL,
};
const char *const hub_metrics_tunnel_protocols[] = {
    "auto", "tcp", "udp", "http", "https", NULL,
};

const char *hub_metrics_handshake_name(enum hub_metrics_handshake r)
{
    static const char *const names[HUB_HS_COUNT] = {"timeout", "channel", "refused", "websocket",
                                                    "other"};
    return (unsigned)r < HUB_HS_COUNT ? names[r] : "?";
}

const char *hub_metrics_share_reject_name(enum hub_metrics_share_reject r)
{
    static const char *const names[HUB_SHARE_REJ_COUNT] = {"expired", "revoked",    "method",
                                                           "path",    "rate_limit", "auth"};
    return (unsigned)r < HUB_SHARE_REJ_COUNT ? names[r] : "?";
}

const char *hub_metrics_delivery_name(enum hub_metrics_delivery r)
{
    static const char *const names[HUB_WH_COUNT] = {"delivered", "failed", "dropped"};
    return (unsigned)r < HUB_WH_COUNT ? names[r] : "?";
}

const char *hub_metrics_tunnel_msg_name(enum hub_metrics_tunnel_msg r)
{
    static const char *const names[HUB_TM_COUNT] = {"list", "status", "delta"};
    return (unsigned)r < HUB_TM_COUNT ? names[r] : "?";
}

const char *hub_metrics_refusal_name(enum hub_metrics_refusal r)
{
    static const char *const names[HUB_REF_COUNT] = {"tunnel_paused",   "agent_offline",
                                                     "hub_limit",       "tunnel_limit",
                                                     "workspace_limit", "client_limit"};
    return (unsigned)r < HUB_REF_COUNT ? names[r] : "?";
}

hub_metrics_t *hub_metrics_new(void)
{
    return calloc(1, sizeof(hub_metrics_t));
}

void hub_metrics_free(hub_metrics_t *m)
{
    if (!m)
        return;
    free(m->bytes);
    free(m);
}

/* ---- counters ----------------------------------------------------------- */

void hub_metrics_handshake_failure(hub_metrics_t *m, enum hub_metrics_handshake reason)
{
    if (m && (unsigned)reason < HUB_HS_COUNT)
        m->handshake[reason]++;
}

void hub_metrics_http_request(hub_metrics_t *m, int status)
{
    if (m && status >= STATUS_MIN && status <= STATUS_MAX)
        m->http[status - STATUS_MIN]++;
}

void hub_metrics_share_rejection(hub_metrics_t *m, enum hub_metrics_share_reject reason)
{
    if (m && (unsigned)reason < HUB_SHARE_REJ_COUNT)
        m->share_reject[reason]++;
}

void hub_metrics_webhook_delivery(hub_metrics_t *m, enum hub_metrics_delivery result)
{
    if (m && (unsigned)result < HUB_WH_COUNT)
        m->delivery[result]++;
}

void hub_metrics_tunnel_entries_sent(hub_metrics_t *m, enum hub_metrics_tunnel_msg how, size_t n)
{
    if (m && (unsigned)how < HUB_TM_COUNT)
        m->tunnel_entries[how] += n;
}

void hub_metrics_connection_refused(hub_metrics_t *m, enum hub_metrics_refusal reason)
{
    if (m && (unsigned)reason < HUB_REF_COUNT)
        m->refused[reason]++;
}

static tunnel_bytes_t *find_bytes(hub_metrics_t *m, const char *id)
{
    for (size_t i = 0; i < m->nbytes; i++)
        if (!strcmp(m->bytes[i].id, id))
            return &m->bytes[i];
    return NULL;
}

void hub_metrics_tunnel_bytes(hub_metrics_t *m, const char *tunnel_id, uint64_t in, uint64_t out)
{
    if (!m || !tunnel_id || strlen(tunnel_id) >= TUNNEL_ID_SIZE)
        return;
    tunnel_bytes_t *b = find_bytes(m, tunnel_id);
    if (!b) {
        if (m->nbytes == m->capbytes) {
            size_t cap = m->capbytes ? m->capbytes * 2 : 16;
            tunnel_bytes_t *p = realloc(m->bytes, cap * sizeof(*p));
            if (!p)
                return; /* a lost sample, not a failure of the connection */
            m->bytes = p;
            m->capbytes = cap;
        }
        b = &m->bytes[m->nbytes++];
        memset(b, 0, sizeof(*b));
        memcpy(b->id, tunnel_id, strlen(tunnel_id) + 1);
    }
    b->in += in;
    b->out += out;
}

/* ---- rendering ---------------------------------------------------------- */

typedef struct out {
    cn_buf_t buf;
    int err;
} out_t;

static void put(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out_t *o, const char *fmt, ...)
{
    if (o->err)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        o->err = CN_EINVAL;
        return;
    }
    uint8_t *p = cn_buf_reserve(&o->buf, (size_t)n + 1, &o->err);
    if (!p)
        return;
    va_start(ap, fmt);
    vsnprintf((char *)p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    cn_buf_commit(&o->buf, (size_t)n);
}

/* A label value as the exposition format wants it: \, " and newline
 * escaped. Names are validated UTF-8 without control characters, so only
 * those three need care. */
static void put_label(out_t *o, const char *v)
{
    for (const char *p = v; *p && !o->err; p++) {
        if (*p == '\\')
            put(o, "\\\\");
        else if (*p == '"')
            put(o, "\\\"");
        else if (*p == '\n')
            put(o, "\\n");
        else
            put(o, "%c", *p);
    }
}

static void family(out_t *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void labelled(out_t *o, const char *name, const char *label, const char *const *values,
                     const uint64_t *counts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put(o, "%s{%s=\"%s\"} %llu\n", name, label, values[i], (unsigned long long)counts[i]);
}

static bool in_list(const char *v, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (!strcmp(list[i], v))
            return true;
    return false;
}

static void render_tunnels(out_t *o, const hub_metrics_snapshot_t *s)
{
    family(o, "connect_tunnels", "gauge", "Tunnels by status and protocol.");
    for (size_t st = 0; hub_metrics_tunnel_statuses[st]; st++)
        for (size_t pr = 0; hub_metrics_tunnel_protocols[pr]; pr++) {
            size_t n = 0;
            for (size_t i = 0; i < s->ntunnels; i++)
                if (!strcmp(s->tunnels[i].status, hub_metrics_tunnel_statuses[st]) &&
                    !strcmp(s->tunnels[i].protocol, hub_metrics_tunnel_protocols[pr]))
                    n++;
            put(o, "connect_tunnels{status=\"%s\",protocol=\"%s\"} %zu\n",
                hub_metrics_tunnel_statuses[st], hub_metrics_tunnel_protocols[pr], n);
        }
    /* Values outside the grid (a newer status or protocol): one line per
     * tunnel would repeat series, so count each pair at its first tunnel. */
    for (size_t i = 0; i < s->ntunnels; i++) {
        const hub_metrics_tunnel_t *t = &s->tunnels[i];
        if (in_list(t->status, hub_metrics_tunnel_statuses) &&
            in_list(t->protocol, hub_metrics_tunnel_protocols))
            continue;
        bool seen = false;
        size_t n = 0;
        for (size_t j = 0; j < s->ntunnels; j++) {
            bool same = !strcmp(s->tunnels[j].status, t->status) &&
                        !strcmp(s->tunnels[j].protocol, t->protocol);
            if (same && j < i)
                seen = true;
            n += same;
        }
        if (seen)
            continue;
        put(o, "connect_tunnels{status=\"");
        put_label(o, t->status);
        put(o, "\",protocol=\"");
        put_label(o, t->protocol);
        put(o, "\"} %zu\n", n);
    }
}

static void render_bytes(out_t *o, hub_metrics_t *m, const hub_metrics_snapshot_t *s)
{
    static const struct {
        const char *name, *help;
        bool in;
    } dirs[] = {
        {"connect_tunnel_received_bytes_total",
         "Bytes public clients sent into the tunnel (toward its target).", true},
        {"connect_tunnel_sent_bytes_total", "Bytes the tunnel sent back to its public clients.",
         false},
    };
    for (size_t d = 0; d < 2; d++) {
        family(o, dirs[d].name, "counter", dirs[d].help);
        for (size_t i = 0; i < s->ntunnels; i++) {
            const hub_metrics_tunnel_t *t = &s->tunnels[i];
            const tunnel_bytes_t *b = m ? find_bytes(m, t->id) : NULL;
            uint64_t v = dirs[d].in ? t->live_in + (b ? b->in : 0) : t->live_out + (b ? b->out : 0);
            put(o, "%s{tunnel_id=\"", dirs[d].name);
            put_label(o, t->id);
            put(o, "\",tunnel_name=\"");
            put_label(o, t->name);
            put(o, "\"} %llu\n", (unsigned long long)v);
        }
    }
}

/* Forgets the byte totals of tunnels that no longer exist. */
static void forget_deleted(hub_metrics_t *m, const hub_metrics_snapshot_t *s)
{
    size_t keep = 0;
    for (size_t i = 0; i < m->nbytes; i++) {
        bool live = false;
        for (size_t j = 0; j < s->ntunnels && !live; j++)
            live = !strcmp(s->tunnels[j].id, m->bytes[i].id);
        if (live)
            m->bytes[keep++] = m->bytes[i];
    }
    m->nbytes = keep;
}

int hub_metrics_render(hub_metrics_t *m, const hub_metrics_snapshot_t *s, char **out, size_t *len)
{
    static const hub_metrics_snapshot_t empty = {0};
    *out = NULL;
    *len = 0;
    if (!s)
        s = &empty;
    out_t o = {.err = 0};
    cn_buf_init(&o.buf, RENDER_MAX, 0);

    family(&o, "connect_agents", "gauge", "Agents by state (pending: not enrolled yet).");
    put(&o, "connect_agents{state=\"connected\"} %zu\n", s->agents_connected);
    put(&o, "connect_agents{state=\"disconnected\"} %zu\n", s->agents_disconnected);
    put(&o, "connect_agents{state=\"pending\"} %zu\n", s->agents_pending);
    family(&o, "connect_agent_links", "gauge", "Live agent links (an agent may hold several).");
    put(&o, "connect_agent_links %zu\n", s->links);

    render_tunnels(&o, s);

    family(&o, "connect_streams_open", "gauge", "Multiplexed streams open on all agent links.");
    put(&o, "connect_streams_open %zu\n", s->streams_open);
    family(&o, "connect_http_pooled_streams", "gauge",
           "Idle streams the HTTP edge keeps open to targets for the next requests (included in "
           "connect_streams_open).");
    put(&o, "connect_http_pooled_streams %zu\n", s->streams_pooled);

    render_bytes(&o, m, s);

    static const uint64_t
        zeros[HUB_SHARE_REJ_COUNT + HUB_HS_COUNT + HUB_WH_COUNT + HUB_TM_COUNT + HUB_REF_COUNT];
    family(&o, "connect_http_requests_total", "counter",
           "Requests the HTTP edge answered, by status code.");
    for (int c = STATUS_MIN; m && c <= STATUS_MAX; c++)
        if (m->http[c - STATUS_MIN])
            put(&o, "connect_http_requests_total{code=\"%d\"} %llu\n", c,
                (unsigned long long)m->http[c - STATUS_MIN]);

    const char
        *names[HUB_SHARE_REJ_COUNT + HUB_HS_COUNT + HUB_WH_COUNT + HUB_TM_COUNT + HUB_REF_COUNT];
    family(&o, "connect_share_rejections_total", "counter",
           "Requests or connections a share refused, by reason.");
    for (int i = 0; i < HUB_SHARE_REJ_COUNT; i++)
        names[i] = hub_metrics_share_reject_name((enum hub_metrics_share_reject)i);
    labelled(&o, "connect_share_rejections_total", "reason", names, m ? m->share_reject : zeros,
             HUB_SHARE_REJ_COUNT);
    family(&o, "connect_share_log_dropped_total", "counter",
           "Share access-log rows dropped because the log writer fell behind.");
    put(&o, "connect_share_log_dropped_total %llu\n", (unsigned long long)s->share_log_dropped);

    family(&o, "connect_webhook_deliveries_total", "counter",
           "Webhook delivery attempts, by result.");
    for (int i = 0; i < HUB_WH_COUNT; i++)
        names[i] = hub_metrics_delivery_name((enum hub_metrics_delivery)i);
    labelled(&o, "connect_webhook_deliveries_total", "result", names, m ? m->delivery : zeros,
             HUB_WH_COUNT);
    family(&o, "connect_webhook_deliveries_pending", "gauge",
           "Webhook deliveries queued in the store.");
    put(&o, "connect_webhook_deliveries_pending %zu\n", s->webhook_pending);

    family(&o, "connect_handshake_failures_total", "counter",
           "Agent links that failed before the hub admitted them, by reason.");
    for (int i = 0; i < HUB_HS_COUNT; i++)
        names[i] = hub_metrics_handshake_name((enum hub_metrics_handshake)i);
    labelled(&o, "connect_handshake_failures_total", "reason", names, m ? m->handshake : zeros,
             HUB_HS_COUNT);

    family(&o, "connect_agent_tunnel_entries_sent_total", "counter",
           "Tunnel entries sent to agent links: in whole lists (list), as one tunnel's new "
           "status (status), or as one tunnel made, changed or deleted (delta).");
    for (int i = 0; i < HUB_TM_COUNT; i++)
        names[i] = hub_metrics_tunnel_msg_name((enum hub_metrics_tunnel_msg)i);
    labelled(&o, "connect_agent_tunnel_entries_sent_total", "message", names,
             m ? m->tunnel_entries : zeros, HUB_TM_COUNT);

    family(&o, "connect_public_connections_refused_total", "counter",
           "Public connections (TCP tunnel ports, the HTTP edge) reset right after accept, by "
           "reason.");
    for (int i = 0; i < HUB_REF_COUNT; i++)
        names[i] = hub_metrics_refusal_name((enum hub_metrics_refusal)i);
    labelled(&o, "connect_public_connections_refused_total", "reason", names,
             m ? m->refused : zeros, HUB_REF_COUNT);

    if (!o.err) {
        uint8_t *nul = cn_buf_reserve(&o.buf, 1, &o.err);
        if (nul)
            *nul = '\0';
    }
    if (o.err) {
        cn_buf_free(&o.buf);
        return o.err;
    }
    if (m)
        forget_deleted(m, s);
    *len = o.buf.len;
    /* Hand the memory over: data starts at mem (no headroom). */
    *out = (char *)o.buf.mem;
    return 0;
}
