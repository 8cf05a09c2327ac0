/* The app-server core (see app_server.h): the route table, request
 * validation, the status machine per tunnel, the event ring and the
 * callback queue. No I/O. */
#include "app_server.h"

#include "cn_backoff.h"
#include "cn_err.h"
#include "cn_log.h"
#include "cn_target.h"

#include <arpa/inet.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define NAME_MAX_CHARS 100
#define SUBDOMAIN_MAX 63
#define CALLBACK_CAP_MS 8000
#define MESSAGE_MAX 512

typedef struct as_tunnel {
    struct as_tunnel *next;
    char id[CN_ID_UUID_SIZE];
    char *name;      /* as given, or NULL */
    char *subdomain; /* as given, or NULL */
    bool http;
    char host[CN_TARGET_HOST_SIZE];
    uint16_t port;
    char *urls[AS_CALLBACK_URLS_MAX];
    size_t nurls;

    as_status_t status;
    bool created;        /* the hub answered the create */
    bool ever_running;   /* "started" was emitted */
    bool stop_requested; /* shutdown, DELETE or exit */
    bool deleted;        /* DELETE: hidden, forgotten once finished */
    bool finished;       /* the worker ended */
    char hub_id[CN_ID_UUID_SIZE];
    char *tunnel_url;
    int remote_port;
    int64_t started_at, updated_at, stopped_at; /* wall ms; 0 = none */
    char *last_error;
} as_tunnel_t;

typedef struct as_event {
    uint64_t id;
    const char *type; /* static */
    char tunnel_id[CN_ID_UUID_SIZE];
    as_status_t status;
    int64_t at;
    char *message;
} as_event_t;

struct as_server {
    bool has_token;
    uint8_t token_hash[crypto_generichash_BYTES];
    as_tunnel_t *tunnels;
    size_t ntunnels;
    as_event_t events[AS_EVENTS_MAX];
    size_t ev_head, ev_count; /* oldest at ev_head */
    uint64_t ev_seq;
    as_callback_t *callbacks[AS_CALLBACK_QUEUE_MAX]; /* in order of creation */
    size_t ncallbacks;
    uint64_t cb_seq;
};

const char *as_status_name(as_status_t s)
{
    static const char *const names[] = {"starting", "running", "unhealthy", "failed", "stopped"};
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

/* ---- life ----------------------------------------------------------------- */

as_server_t *as_new(const as_config_t *cfg)
{
    as_server_t *as = calloc(1, sizeof(*as));
    if (!as)
        return NULL;
    if (cfg && cfg->token && *cfg->token) {
        /* Kept only as a hash: compared in constant time, never echoed. */
        as->has_token = true;
        crypto_generichash(as->token_hash, sizeof(as->token_hash),
                           (const unsigned char *)cfg->token, strlen(cfg->token), NULL, 0);
    }
    return as;
}

static void tunnel_free(as_tunnel_t *t)
{
    free(t->name);
    free(t->subdomain);
    for (size_t i = 0; i < t->nurls; i++)
        free(t->urls[i]);
    free(t->tunnel_url);
    free(t->last_error);
    free(t);
}

static void callback_free(as_callback_t *cb)
{
    if (!cb)
        return;
    free(cb->body);
    free(cb);
}

void as_free(as_server_t *as)
{
    if (!as)
        return;
    while (as->tunnels) {
        as_tunnel_t *t = as->tunnels;
        as->tunnels = t->next;
        tunnel_free(t);
    }
    for (size_t i = 0; i < as->ev_count; i++)
        free(as->events[(as->ev_head + i) % AS_EVENTS_MAX].message);
    for (size_t i = 0; i < as->ncallbacks; i++)
        callback_free(as->callbacks[i]);
    sodium_memzero(as, sizeof(*as));
    free(as);
}

/* ---- helpers -------------------------------------------------------------- */

static void set_str(char **dst, const char *s)
{
    free(*dst);
    *dst = s ? strdup(s) : NULL;
}

/* RFC 3339 UTC with milliseconds, as the hub writes its timestamps. */
static json_t *time_json(int64_t ms)
{
    if (ms <= 0)
        return json_null();
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    char buf[40], out[48];
    if (!gmtime_r(&secs, &tm) || !strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm))
        return json_null();
    snprintf(out, sizeof(out), "%s.%03dZ", buf, (int)(ms % 1000));
    return json_string(out);
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static void new_uuid(char out[static CN_ID_UUID_SIZE])
{
    uint8_t b[16];
    randombytes_buf(b, sizeof(b));
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, CN_ID_UUID_SIZE,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

static as_tunnel_t *find(const as_server_t *as, const char *id)
{
    for (as_tunnel_t *t = as->tunnels; t; t = t->next)
        if (!strcmp(t->id, id))
            return t;
    return NULL;
}

/* A tunnel the API still shows (DELETE hides it at once). */
static as_tunnel_t *find_visible(const as_server_t *as, const char *id)
{
    as_tunnel_t *t = find(as, id);
    return t && !t->deleted ? t : NULL;
}

static void forget(as_server_t *as, as_tunnel_t *t)
{
    for (as_tunnel_t **p = &as->tunnels; *p; p = &(*p)->next)
        if (*p == t) {
            *p = t->next;
            as->ntunnels--;
            tunnel_free(t);
            return;
        }
}

static json_t *tunnel_json(const as_tunnel_t *t)
{
    json_t *urls = json_array();
    for (size_t i = 0; urls && i < t->nurls; i++)
        json_array_append_new(urls, json_string(t->urls[i]));
    json_t *o = json_object();
    if (!o || !urls) {
        json_decref(o);
        json_decref(urls);
        return NULL;
    }
    json_object_set_new(o, "id", json_string(t->id));
    json_object_set_new(o, "name", str_or_null(t->name));
    json_object_set_new(o, "type", json_string(t->http ? "http" : "tcp"));
    json_object_set_new(o, "host", json_string(t->host));
    json_object_set_new(o, "port", json_integer(t->port));
    json_object_set_new(o, "subdomain", str_or_null(t->subdomain));
    json_object_set_new(o, "status", json_string(as_status_name(t->status)));
    json_object_set_new(o, "tunnel_url", str_or_null(t->tunnel_url));
    json_object_set_new(o, "remote_port",
                        t->remote_port > 0 ? json_integer(t->remote_port) : json_null());
    json_object_set_new(o, "hub_tunnel_id", t->hub_id[0] ? json_string(t->hub_id) : json_null());
    json_object_set_new(o, "callback_urls", urls);
    json_object_set_new(o, "started_at", time_json(t->started_at));
    json_object_set_new(o, "updated_at", time_json(t->updated_at));
    json_object_set_new(o, "stopped_at", time_json(t->stopped_at));
    json_object_set_new(o, "last_error", str_or_null(t->last_error));
    return o;
}

json_t *as_tunnel_json(const as_server_t *as, const char *id)
{
    const as_tunnel_t *t = find(as, id);
    return t ? tunnel_json(t) : NULL;
}

size_t as_tunnel_count(const as_server_t *as)
{
    return as->ntunnels;
}

/* ---- answers -------------------------------------------------------------- */

void as_answer_clear(as_answer_t *a)
{
    json_decref(a->body);
    memset(a, 0, sizeof(*a));
}

static void answer(as_answer_t *out, int status, json_t *body)
{
    json_decref(out->body);
    out->status = status;
    out->body = body;
}

static void answer_msg(as_answer_t *out, int status, const char *msg)
{
    answer(out, status, json_pack("{s:s}", "message", msg));
    if (!out->body) /* a message that is not UTF-8 */
        out->body = json_pack("{s:s}", "message", "invalid request");
}

static void answer_tunnel(as_answer_t *out, int status, const as_tunnel_t *t)
{
    json_t *j = tunnel_json(t);
    if (j)
        answer(out, status, j);
    else
        answer(out, 500, NULL);
}

/* ---- events and callbacks --------------------------------------------------- */

static json_t *event_json(const as_event_t *e)
{
    return json_pack("{s:I,s:s,s:s,s:s,s:o,s:o}", "id", (json_int_t)e->id, "type", e->type,
                     "tunnel_id", e->tunnel_id, "status", as_status_name(e->status), "timestamp",
                     time_json(e->at), "message", str_or_null(e->message));
}

static void enqueue_callback(as_server_t *as, const char *url, const json_t *body, int64_t mono)
{
    if (as->ncallbacks == AS_CALLBACK_QUEUE_MAX) {
        /* Bounded: the oldest waiting delivery goes (one in flight stays,
         * its answer is on the way). */
        for (size_t i = 0; i < as->ncallbacks; i++) {
            if (as->callbacks[i]->in_flight)
                continue;
            cn_log_warn("app-server: callback queue full, dropping a delivery to %s",
                        as->callbacks[i]->url);
            callback_free(as->callbacks[i]);
            memmove(&as->callbacks[i], &as->callbacks[i + 1],
                    (as->ncallbacks - i - 1) * sizeof(as_callback_t *));
            as->ncallbacks--;
            break;
        }
        if (as->ncallbacks == AS_CALLBACK_QUEUE_MAX)
            return;
    }
    as_callback_t *cb = calloc(1, sizeof(*cb));
    char *text = json_dumps(body, JSON_COMPACT);
    if (!cb || !text) {
        free(cb);
        free(text);
        cn_log_warn("app-server: out of memory, a callback to %s is lost", url);
        return;
    }
    cb->seq = ++as->cb_seq;
    snprintf(cb->url, sizeof(cb->url), "%s", url);
    cb->body = text;
    cb->body_len = strlen(text);
    cb->due_mono_ms = mono;
    as->callbacks[as->ncallbacks++] = cb;
}

static void emit(as_server_t *as, const as_tunnel_t *t, const char *type, int64_t wall,
                 int64_t mono)
{
    if (as->ev_count == AS_EVENTS_MAX) {
        free(as->events[as->ev_head].message);
        as->ev_head = (as->ev_head + 1) % AS_EVENTS_MAX;
        as->ev_count--;
    }
    as_event_t *e = &as->events[(as->ev_head + as->ev_count) % AS_EVENTS_MAX];
    memset(e, 0, sizeof(*e));
    e->id = ++as->ev_seq;
    e->type = type;
    snprintf(e->tunnel_id, sizeof(e->tunnel_id), "%s", t->id);
    e->status = t->status;
    e->at = wall;
    e->message = t->last_error ? strdup(t->last_error) : NULL;
    as->ev_count++;
    cn_log_info("app-server: tunnel %s: %s%s%s", t->id, type, t->last_error ? ": " : "",
                t->last_error ? t->last_error : "");
    if (!t->nurls)
        return;
    json_t *body =
        json_pack("{s:s,s:I,s:s,s:o,s:o}", "event", type, "event_id", (json_int_t)e->id,
                  "tunnel_id", t->id, "timestamp", time_json(wall), "tunnel", tunnel_json(t));
    if (!body)
        return;
    for (size_t i = 0; i < t->nurls; i++)
        enqueue_callback(as, t->urls[i], body, mono);
    json_decref(body);
}

as_callback_t *as_callback_take(as_server_t *as, int64_t mono_ms, int64_t *next_due_ms)
{
    as_callback_t *due = NULL;
    int64_t next = -1;
    for (size_t i = 0; i < as->ncallbacks; i++) {
        as_callback_t *cb = as->callbacks[i];
        if (cb->in_flight)
            continue;
        if (!due && cb->due_mono_ms <= mono_ms) {
            due = cb;
            continue;
        }
        if (next < 0 || cb->due_mono_ms < next)
            next = cb->due_mono_ms;
    }
    if (due) {
        due->in_flight = true;
        due->attempts++;
    }
    if (next_due_ms)
        *next_due_ms = next;
    return due;
}

bool as_callback_done(as_server_t *as, uint64_t seq, bool ok, int64_t mono_ms, uint32_t rnd,
                      uint32_t *retry_ms)
{
    for (size_t i = 0; i < as->ncallbacks; i++) {
        as_callback_t *cb = as->callbacks[i];
        if (cb->seq != seq)
            continue;
        cb->in_flight = false;
        if (!ok && cb->attempts < AS_CALLBACK_ATTEMPTS) {
            uint32_t delay =
                cn_backoff_delay(cb->attempts - 1, AS_CALLBACK_BASE_MS, CALLBACK_CAP_MS, rnd);
            cb->due_mono_ms = mono_ms + delay;
            if (retry_ms)
                *retry_ms = delay;
            return false;
        }
        callback_free(cb);
        memmove(&as->callbacks[i], &as->callbacks[i + 1],
                (as->ncallbacks - i - 1) * sizeof(as_callback_t *));
        as->ncallbacks--;
        return true;
    }
    return true; /* dropped meanwhile */
}

size_t as_callback_pending(const as_server_t *as)
{
    return as->ncallbacks;
}

/* ---- callback URLs -------------------------------------------------------- */

bool as_url_parse(const char *url, as_url_t *out, const char **why)
{
    static const char scheme[] = "http://";
    memset(out, 0, sizeof(*out));
    size_t n = strlen(url);
    if (n > AS_CALLBACK_URL_MAX) {
        *why = "is longer than 2048 bytes";
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f) {
            *why = "must be printable ASCII without spaces";
            return false;
        }
    if (strncasecmp(url, scheme, sizeof(scheme) - 1) != 0) {
        *why = "must start with http:// (https is not supported for callbacks)";
        return false;
    }
    const char *h = url + sizeof(scheme) - 1;
    const char *end = h + strcspn(h, "/?#");
    if (memchr(h, '@', (size_t)(end - h))) {
        *why = "must not carry user:password@";
        return false;
    }
    if (strchr(url, '#')) {
        *why = "must not have a #fragment";
        return false;
    }
    const char *port = NULL;
    const char *hend = end;
    if (*h == '[') {
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (!rb) {
            *why = "has an unclosed [IPv6] host";
            return false;
        }
        if (rb + 1 < end) {
            if (rb[1] != ':') {
                *why = "has junk after the [IPv6] host";
                return false;
            }
            port = rb + 2;
        }
        h++;
        hend = rb;
    } else {
        const char *colon = memchr(h, ':', (size_t)(end - h));
        if (colon) {
            port = colon + 1;
            hend = colon;
        }
    }
    size_t hlen = (size_t)(hend - h);
    if (hlen == 0 || hlen >= sizeof(out->host)) {
        *why = "needs a host";
        return false;
    }
    memcpy(out->host, h, hlen);
    out->host[hlen] = '\0';
    struct in_addr four;
    struct in6_addr six;
    if (strcasecmp(out->host, "localhost") != 0 && inet_pton(AF_INET, out->host, &four) != 1 &&
        inet_pton(AF_INET6, out->host, &six) != 1) {
        *why = "must name an IP address or localhost (no DNS lookups from the app-server)";
        return false;
    }
    out->port = 80;
    if (port) {
        unsigned long v = 0;
        if (port == end) {
            *why = "has an empty port";
            return false;
        }
        for (const char *p = port; p < end; p++) {
            if (*p < '0' || *p > '9' || v > 65535) {
                *why = "has a bad port";
                return false;
            }
            v = v * 10 + (unsigned long)(*p - '0');
        }
        if (v < 1 || v > 65535) {
            *why = "port must be between 1 and 65535";
            return false;
        }
        out->port = (uint16_t)v;
    }
    if (*end == '\0')
        snprintf(out->path, sizeof(out->path), "/");
    else if (*end == '?')
        snprintf(out->path, sizeof(out->path), "/%s", end);
    else
        snprintf(out->path, sizeof(out->path), "%s", end);
    return true;
}

/* ---- requests -------------------------------------------------------------- */

static bool authorized(const as_server_t *as, const char *header)
{
    if (!as->has_token)
        return true;
    static const char bearer[] = "Bearer ";
    if (!header || strncasecmp(header, bearer, sizeof(bearer) - 1) != 0)
        return false;
    const char *tok = header + sizeof(bearer) - 1;
    uint8_t h[crypto_generichash_BYTES];
    crypto_generichash(h, sizeof(h), (const unsigned char *)tok, strlen(tok), NULL, 0);
    return crypto_verify_32(h, as->token_hash) == 0;
}

/* Appends one problem to the message being built. */
static void problem(char *msg, size_t len, const char *field, const char *what)
{
    size_t used = strlen(msg);
    if (used + 8 >= len)
        return;
    snprintf(msg + used, len - used, "%s%s %s", used ? "; " : "", field, what);
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            n++;
    return n;
}

static bool subdomain_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SUBDOMAIN_MAX || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

static bool add_url(as_tunnel_t *t, const json_t *v, const char *field, char *msg, size_t len)
{
    const char *why = NULL;
    as_url_t u;
    if (!json_is_string(v)) {
        problem(msg, len, field, "must be a string");
        return false;
    }
    if (!as_url_parse(json_string_value(v), &u, &why)) {
        problem(msg, len, field, why);
        return false;
    }
    for (size_t i = 0; i < t->nurls; i++)
        if (!strcmp(t->urls[i], json_string_value(v)))
            return true; /* the same receiver once */
    if (t->nurls == AS_CALLBACK_URLS_MAX) {
        problem(msg, len, field, "makes more than 8 callback URLs");
        return false;
    }
    t->urls[t->nurls] = strdup(json_string_value(v));
    if (!t->urls[t->nurls])
        return false;
    t->nurls++;
    return true;
}

/* Validates a create body into a new tunnel; every problem goes in msg. */
static as_tunnel_t *parse_create(const json_t *o, char *msg, size_t len)
{
    static const char *const known[] = {"name",      "type",         "host",         "port",
                                        "subdomain", "callback_url", "callback_urls"};
    as_tunnel_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)o, key, v)
    {
        bool ok = false;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            ok = ok || !strcmp(key, known[i]);
        if (!ok) {
            char field[80];
            snprintf(field, sizeof(field), "'%.60s'", key);
            problem(msg, len, field, "is not a known field");
        }
    }
    v = json_object_get(o, "type");
    if (!v)
        problem(msg, len, "type", "is required (http or tcp)");
    else if (!json_is_string(v) ||
             (strcmp(json_string_value(v), "http") && strcmp(json_string_value(v), "tcp")))
        problem(msg, len, "type", "must be http or tcp");
    else
        t->http = !strcmp(json_string_value(v), "http");

    v = json_object_get(o, "port");
    if (!v)
        problem(msg, len, "port", "is required");
    else if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535)
        problem(msg, len, "port", "must be an integer between 1 and 65535");
    else
        t->port = (uint16_t)json_integer_value(v);

    v = json_object_get(o, "host");
    const char *why = NULL;
    if (!v)
        snprintf(t->host, sizeof(t->host), "localhost");
    else if (!json_is_string(v))
        problem(msg, len, "host", "must be a string");
    else if (!cn_target_host_valid(json_string_value(v), &why))
        problem(msg, len, "host", why);
    else
        snprintf(t->host, sizeof(t->host), "%s", json_string_value(v));

    v = json_object_get(o, "name");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) || !*json_string_value(v) ||
            utf8_chars(json_string_value(v)) > NAME_MAX_CHARS)
            problem(msg, len, "name", "must be a string of 1-100 characters");
        else
            set_str(&t->name, json_string_value(v));
    }
    v = json_object_get(o, "subdomain");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) || !subdomain_ok(json_string_value(v)))
            problem(msg, len, "subdomain",
                    "must be 1-63 characters of a-z, 0-9 and '-', not at either end");
        else if (!t->http && json_is_string(json_object_get(o, "type")))
            problem(msg, len, "subdomain", "applies to http tunnels only");
        else
            set_str(&t->subdomain, json_string_value(v));
    }
    v = json_object_get(o, "callback_url");
    if (v && !json_is_null(v))
        add_url(t, v, "callback_url", msg, len);
    v = json_object_get(o, "callback_urls");
    if (v && !json_is_null(v)) {
        if (!json_is_array(v)) {
            problem(msg, len, "callback_urls", "must be an array of URLs");
        } else {
            size_t i;
            json_t *u;
            json_array_foreach(v, i, u)
            {
                if (!add_url(t, u, "callback_urls", msg, len))
                    break;
            }
        }
    }
    return t;
}

static void handle_create(as_server_t *as, const as_request_t *req, int64_t wall, as_answer_t *out)
{
    char msg[MESSAGE_MAX] = "";
    json_error_t jerr;
    json_t *o =
        req->body_len ? json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!o) {
        if (!req->body_len)
            snprintf(msg, sizeof(msg), "a JSON body is required");
        else
            snprintf(msg, sizeof(msg), "invalid JSON: %.200s", jerr.text);
        answer_msg(out, 400, msg);
        return;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        answer_msg(out, 400, "the body must be a JSON object");
        return;
    }
    as_tunnel_t *t = parse_create(o, msg, sizeof(msg));
    json_decref(o);
    if (!t) {
        answer(out, 500, NULL);
        return;
    }
    if (msg[0]) {
        tunnel_free(t);
        answer_msg(out, 400, msg);
        return;
    }
    if (as->ntunnels >= AS_MAX_TUNNELS) {
        tunnel_free(t);
        answer_msg(out, 400, "too many tunnels (at most 64): delete some first");
        return;
    }
    new_uuid(t->id);
    t->status = AS_STARTING;
    t->started_at = t->updated_at = wall;
    t->next = as->tunnels;
    as->tunnels = t;
    as->ntunnels++;
    out->action = AS_ACT_START;
    snprintf(out->tunnel_id, sizeof(out->tunnel_id), "%s", t->id);
}

/* shutdown (keep the record) and DELETE (forget it once the worker ends). */
static void handle_stop(as_server_t *as, as_tunnel_t *t, bool remove, int64_t wall,
                        as_answer_t *out)
{
    if (!t->finished && !t->stop_requested) {
        t->stop_requested = true;
        if (t->status != AS_FAILED)
            t->status = AS_STOPPED;
        t->stopped_at = t->updated_at = wall;
        out->action = AS_ACT_STOP;
        snprintf(out->tunnel_id, sizeof(out->tunnel_id), "%s", t->id);
    }
    answer_tunnel(out, 200, t);
    if (remove) {
        if (t->finished)
            forget(as, t);
        else
            t->deleted = true;
    }
}

static void handle_list(const as_server_t *as, as_answer_t *out)
{
    json_t *arr = json_array();
    for (const as_tunnel_t *t = as->tunnels; arr && t; t = t->next)
        if (!t->deleted && json_array_append_new(arr, tunnel_json(t)) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    json_t *body = arr ? json_pack("{s:o}", "tunnels", arr) : NULL;
    answer(out, body ? 200 : 500, body);
}

static void handle_events(const as_server_t *as, const char *tunnel_id, as_answer_t *out)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < as->ev_count; i++) {
        const as_event_t *e = &as->events[(as->ev_head + i) % AS_EVENTS_MAX];
        if (tunnel_id && strcmp(e->tunnel_id, tunnel_id) != 0)
            continue;
        if (json_array_append_new(arr, event_json(e)) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    json_t *body = arr ? json_pack("{s:o}", "events", arr) : NULL;
    answer(out, body ? 200 : 500, body);
}

static void method_not_allowed(as_answer_t *out, const char *allow)
{
    char msg[96];
    snprintf(msg, sizeof(msg), "method not allowed here (allowed: %s)", allow);
    answer_msg(out, 405, msg);
    out->allow = allow;
}

static bool is(const as_request_t *req, const char *m)
{
    return !strcmp(req->method, m);
}

/* "/api/v1/tunnels/{id}[/shutdown]": the id (a UUID) and the rest. */
static bool split_tunnel_path(const char *path, char id[static CN_ID_UUID_SIZE], const char **rest)
{
    static const char prefix[] = "/api/v1/tunnels/";
    if (strncmp(path, prefix, sizeof(prefix) - 1) != 0)
        return false;
    const char *p = path + sizeof(prefix) - 1;
    size_t n = strcspn(p, "/");
    if (n == 0)
        return false;
    if (n != CN_ID_UUID_LEN) {
        id[0] = '\0'; /* not one of ours: 404 */
    } else {
        memcpy(id, p, n);
        id[n] = '\0';
        if (!cn_id_is_uuid(id))
            id[0] = '\0';
    }
    *rest = p + n;
    return true;
}

void as_handle(as_server_t *as, const as_request_t *req, int64_t wall_ms, as_answer_t *out)
{
    memset(out, 0, sizeof(*out));
    const char *path = req->path ? req->path : "/";
    if (!strcmp(path, "/api/v1/health")) {
        /* Liveness, like the hub's: no token. */
        if (is(req, "GET") || is(req, "HEAD"))
            answer(out, 200, json_pack("{s:s,s:i}", "status", "ok", "tunnels", (int)as->ntunnels));
        else
            method_not_allowed(out, "GET");
        return;
    }
    if (!authorized(as, req->authorization)) {
        answer_msg(out, 401, "a valid bearer token is required (Authorization: Bearer TOKEN)");
        return;
    }
    char id[CN_ID_UUID_SIZE];
    const char *rest = NULL;
    if (!strcmp(path, "/api/v1/tunnels")) {
        if (is(req, "GET"))
            handle_list(as, out);
        else if (is(req, "POST"))
            handle_create(as, req, wall_ms, out);
        else
            method_not_allowed(out, "GET, POST");
    } else if (!strcmp(path, "/api/v1/events")) {
        if (is(req, "GET"))
            handle_events(as, req->tunnel_id_arg, out);
        else
            method_not_allowed(out, "GET");
    } else if (split_tunnel_path(path, id, &rest) && (!*rest || !strcmp(rest, "/shutdown"))) {
        bool shutdown = *rest != '\0';
        const char *allow = shutdown ? "POST" : "GET, DELETE";
        as_tunnel_t *t = id[0] ? find_visible(as, id) : NULL;
        if (shutdown ? !is(req, "POST") : !(is(req, "GET") || is(req, "DELETE")))
            method_not_allowed(out, allow);
        else if (!t)
            answer_msg(out, 404, "no tunnel with this id");
        else if (shutdown)
            handle_stop(as, t, false, wall_ms, out);
        else if (is(req, "DELETE"))
            handle_stop(as, t, true, wall_ms, out);
        else
            answer_tunnel(out, 200, t);
    } else {
        answer_msg(out, 404, "no such route");
    }
}

int as_tunnel_spec(const as_server_t *as, const char *id, as_tunnel_spec_t *spec)
{
    const as_tunnel_t *t = find(as, id);
    if (!t)
        return CN_ENOTFOUND;
    spec->id = t->id;
    spec->name = t->subdomain ? t->subdomain : t->name;
    spec->http = t->http;
    spec->host = t->host;
    spec->port = t->port;
    return 0;
}

/* ---- worker results ---------------------------------------------------------- */

void as_tunnel_created(as_server_t *as, const char *id, const char *hub_id, const char *url,
                       int remote_port, int64_t wall_ms, as_answer_t *out)
{
    memset(out, 0, sizeof(*out));
    as_tunnel_t *t = find(as, id);
    if (!t) {
        answer_msg(out, 500, "the tunnel vanished while it was created");
        return;
    }
    t->created = true;
    snprintf(t->hub_id, sizeof(t->hub_id), "%s", hub_id ? hub_id : "");
    set_str(&t->tunnel_url, url);
    t->remote_port = remote_port;
    t->updated_at = wall_ms;
    answer_tunnel(out, 201, t);
}

void as_tunnel_create_failed(as_server_t *as, const char *id, bool invalid, const char *why,
                             as_answer_t *out)
{
    memset(out, 0, sizeof(*out));
    char msg[MESSAGE_MAX];
    snprintf(msg, sizeof(msg), "the hub did not create the tunnel: %s", why ? why : "unknown");
    answer_msg(out, invalid ? 400 : 500, msg);
    as_tunnel_t *t = find(as, id);
    if (t)
        forget(as, t);
}

void as_tunnel_state(as_server_t *as, const char *id, as_status_t st, const char *why,
                     int64_t wall_ms, int64_t mono_ms)
{
    as_tunnel_t *t = find(as, id);
    if (!t || t->stop_requested || t->status == AS_FAILED || t->status == AS_STOPPED)
        return;
    if (st == t->status && (!why || (t->last_error && !strcmp(why, t->last_error))))
        return;
    as_status_t was = t->status;
    t->status = st;
    t->updated_at = wall_ms;
    const char *type = NULL;
    switch (st) {
    case AS_RUNNING:
        set_str(&t->last_error, NULL);
        if (was == AS_RUNNING)
            return;
        type = t->ever_running ? "reconnected" : "started";
        t->ever_running = true;
        break;
    case AS_UNHEALTHY:
        set_str(&t->last_error, why);
        if (was == AS_UNHEALTHY)
            return; /* a new reason, not a new event */
        type = "unhealthy";
        break;
    case AS_FAILED:
        set_str(&t->last_error, why);
        t->stopped_at = wall_ms;
        type = "failed";
        break;
    default:
        return;
    }
    emit(as, t, type, wall_ms, mono_ms);
}

void as_tunnel_finished(as_server_t *as, const char *id, const char *why, int64_t wall_ms,
                        int64_t mono_ms)
{
    as_tunnel_t *t = find(as, id);
    if (!t)
        return;
    t->finished = true;
    if (why)
        set_str(&t->last_error, why);
    if (t->stop_requested) {
        t->updated_at = wall_ms;
        emit(as, t, "stopped", wall_ms, mono_ms);
    }
    if (t->deleted)
        forget(as, t);
}

void as_stop_all(as_server_t *as, int64_t wall_ms, void (*each)(void *ctx, const char *id),
                 void *ctx)
{
    for (as_tunnel_t *t = as->tunnels; t; t = t->next) {
        if (t->finished || t->stop_requested)
            continue;
        t->stop_requested = true;
        if (t->status != AS_FAILED)
            t->status = AS_STOPPED;
        t->stopped_at = t->updated_at = wall_ms;
        each(ctx, t->id);
    }
}
