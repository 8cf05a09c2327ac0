/* The webhook delivery worker (see webhooks.h).
 *
 * One timer drives everything: every tick it polls name resolutions in
 * progress, ends attempts past their deadline, trims the queue now and
 * then, and starts an attempt for each due webhook that has none in flight.
 * An attempt is a small state machine: RESOLVING (getaddrinfo_a, polled),
 * CONNECTING (a cn_hpost to the checked address: POST with the signed
 * body), then its outcome is recorded in the store and it is freed. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getaddrinfo_a */
#endif
#include "webhooks.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libwebsockets.h>
#include <sodium.h>

#include "cn_err.h"
#include "cn_hpost.h"
#include "cn_log.h"
#include "cn_time.h"
#include "events.h"
#include "webhook_core.h"

#define PROTOCOL_NAME "connect-webhook"
#define TICK_MS 500
#define TICK_FAST_MS 50 /* while a resolution is in progress */
#define PRUNE_EVERY_MS (60 * 1000)

enum phase { PH_RESOLVING, PH_CONNECTING };

typedef struct attempt {
    struct attempt *next;
    hub_webhooks_t *wh;
    enum phase phase;
    bool done;            /* the outcome is recorded (or abandoned) */
    cn_hpost_t *post;     /* CONNECTING: until its done is called */
    uint64_t deadline_ms; /* monotonic */
    char webhook_id[HUB_ID_SIZE];
    char workspace_id[HUB_ID_SIZE];
    char url_text[HUB_WEBHOOK_URL_SIZE];
    int64_t delivery_id;
    char event_type[HUB_EVENT_TYPE_SIZE];
    unsigned failures; /* the webhook's consecutive failures before this one */
    hub_webhook_url_t url;
    char addr[INET6_ADDRSTRLEN];
    char host_header[HUB_HOST_SIZE + 16];
    char sig[HUB_WEBHOOK_SIG_SIZE];
    uint8_t *buf; /* the body */
    size_t body_len;
    int status;
    /* RESOLVING */
    struct gaicb gai;
    struct gaicb *gai_list[1];
    struct addrinfo hints;
    char port_text[8];
} attempt_t;

struct hub_webhooks {
    hub_webhooks_config_t cfg;
    struct lws_context *ctx;
    struct lws_vhost *vh;
    struct lws_protocols protocols[2];
    lws_sorted_usec_list_t tick;
    attempt_t *attempts;
    unsigned in_flight;
    uint64_t last_prune_ms;
    bool running;
};

static void tick(lws_sorted_usec_list_t *sul);

/* ---- outcomes ----------------------------------------------------------- */

static void detach(hub_webhooks_t *wh, attempt_t *a)
{
    for (attempt_t **pp = &wh->attempts; *pp; pp = &(*pp)->next)
        if (*pp == a) {
            *pp = a->next;
            wh->in_flight--;
            return;
        }
}

static void attempt_free(attempt_t *a)
{
    if (!a)
        return;
    if (a->buf)
        free(a->buf);
    sodium_memzero(a->sig, sizeof(a->sig));
    free(a);
}

/* Records a failure: the webhook waits its backoff, and is disabled (with
 * an event, in the same transaction) after too many in a row. */
static void record_failure(hub_webhooks_t *wh, attempt_t *a, const char *error)
{
    hub_store_t *st = wh->cfg.store;
    unsigned failures = a->failures + 1;
    uint32_t delay = hub_webhook_retry_delay(failures, wh->cfg.retry_base_ms, randombytes_random());
    hub_delivery_outcome_t o = {
        .state = HUB_DELIVERY_PENDING,
        .status = a->status,
        .error = error,
        .attempted = true,
        .retry_at = hub_store_now(st) + delay,
        .disable = failures >= wh->cfg.disable_after,
    };
    int rc = hub_store_tx_begin(st);
    if (rc == 0) {
        rc = hub_store_delivery_record(st, a->webhook_id, a->delivery_id, &o);
        if (rc == 0 && o.disable)
            rc = hub_event_record(st, a->workspace_id, HUB_EV_WEBHOOK_DISABLED, NULL, NULL,
                                  json_pack("{s:s,s:s,s:i,s:s}", "webhookId", a->webhook_id, "url",
                                            a->url_text, "failures", (int)failures, "lastError",
                                            error));
        rc = hub_store_tx_end(st, rc);
    }
    if (rc < 0)
        cn_log_warn("webhook %s: cannot record delivery %lld: %s", a->webhook_id,
                    (long long)a->delivery_id, hub_store_errmsg(st));
    else if (o.disable)
        cn_log_warn("webhook %s disabled after %u failed attempts in a row (last: %s)",
                    a->webhook_id, failures, error);
    else
        cn_log_info("webhook %s: delivery %lld (%s) failed (%s); retry in %u ms", a->webhook_id,
                    (long long)a->delivery_id, a->event_type, error, delay);
}

/* The attempt ended: 2xx is delivered, anything else a failure. */
static void finish(hub_webhooks_t *wh, attempt_t *a, const char *error)
{
    if (a->done)
        return;
    a->done = true;
    detach(wh, a);
    if (!error && (a->status < 200 || a->status > 299))
        error = "the receiver did not answer 2xx";
    char why[HUB_DELIVERY_ERROR_SIZE];
    if (error && a->status)
        snprintf(why, sizeof(why), "HTTP %d: %s", a->status, error);
    else
        snprintf(why, sizeof(why), "%s", error ? error : "");
    if (!error) {
        hub_delivery_outcome_t o = {
            .state = HUB_DELIVERY_SENT, .status = a->status, .attempted = true};
        if (hub_store_delivery_record(wh->cfg.store, a->webhook_id, a->delivery_id, &o) < 0)
            cn_log_warn("webhook %s: cannot record delivery %lld: %s", a->webhook_id,
                        (long long)a->delivery_id, hub_store_errmsg(wh->cfg.store));
        cn_log_debug("webhook %s: delivery %lld (%s) delivered, HTTP %d", a->webhook_id,
                     (long long)a->delivery_id, a->event_type, a->status);
        hub_metrics_webhook_delivery(wh->cfg.metrics, HUB_WH_DELIVERED);
    } else {
        record_failure(wh, a, why);
        hub_metrics_webhook_delivery(wh->cfg.metrics, HUB_WH_FAILED);
    }
    /* The webhook's next delivery may go at once. */
    if (wh->running)
        lws_sul_schedule(wh->ctx, 0, &wh->tick, tick, 1);
}

/* ---- the lws client ----------------------------------------------------- */

/* The POST ended: done is called at most once, and never at stop (the
 * attempt stays pending in the store and hub_webhooks_free frees it). */
static void post_done(void *user, int status, const char *error)
{
    attempt_t *a = user;
    a->post = NULL;
    a->status = status;
    if (!a->wh->running)
        return;
    finish(a->wh, a, error);
    attempt_free(a);
}

static void connect_now(hub_webhooks_t *wh, attempt_t *a)
{
    char num[32];
    snprintf(num, sizeof(num), "%lld", (long long)a->delivery_id);
    const char *headers[] = {"content-type:",
                             "application/json",
                             "user-agent:",
                             "connect-hub-webhooks/1",
                             "x-connect-signature:",
                             a->sig,
                             "x-connect-event:",
                             a->event_type,
                             "x-connect-delivery:",
                             num,
                             "x-connect-webhook:",
                             a->webhook_id,
                             NULL};
    cn_hpost_opts_t o = {
        .ctx = wh->ctx,
        .vhost = wh->vh,
        .protocol = PROTOCOL_NAME,
        .address = a->addr,
        .port = a->url.port,
        .path = a->url.path,
        .host = a->host_header,
        .tls = a->url.tls,
        .headers = headers,
        .body = a->buf,
        .body_len = a->body_len,
        .done = post_done,
        .user = a,
    };
    char err[96];
    a->phase = PH_CONNECTING;
    if (cn_hpost_start(&o, &a->post, err, sizeof(err)) < 0) {
        finish(wh, a, err);
        attempt_free(a);
    }
}

/* ---- addresses ---------------------------------------------------------- */

/* Takes the first allowed address of a resolution (or the literal) and
 * connects to exactly that one. */
static void use_addresses(hub_webhooks_t *wh, attempt_t *a, const struct addrinfo *ai)
{
    const char *why = "resolves to no address";
    for (; ai; ai = ai->ai_next) {
        if (!hub_webhook_addr_allowed(ai->ai_addr, &why))
            continue;
        const void *src =
            ai->ai_family == AF_INET
                ? (const void *)&((const struct sockaddr_in *)ai->ai_addr)->sin_addr
                : (const void *)&((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        if (inet_ntop(ai->ai_family, src, a->addr, sizeof(a->addr))) {
            connect_now(wh, a);
            return;
        }
    }
    char msg[HUB_DELIVERY_ERROR_SIZE];
    snprintf(msg, sizeof(msg), "%.100s %s", a->url.host, why);
    finish(wh, a, msg);
    attempt_free(a);
}

static void resolve(hub_webhooks_t *wh, attempt_t *a)
{
    struct in6_addr six;
    struct in_addr four;
    /* Literals need no resolver. */
    if (inet_pton(AF_INET, a->url.host, &four) == 1 ||
        inet_pton(AF_INET6, a->url.host, &six) == 1) {
        struct addrinfo hints = {.ai_flags = AI_NUMERICHOST}, *res = NULL;
        if (getaddrinfo(a->url.host, NULL, &hints, &res) != 0 || !res) {
            finish(wh, a, "not an address");
            attempt_free(a);
            return;
        }
        use_addresses(wh, a, res);
        freeaddrinfo(res);
        return;
    }
    a->phase = PH_RESOLVING;
    a->hints.ai_family = AF_UNSPEC;
    a->hints.ai_socktype = SOCK_STREAM;
    a->gai.ar_name = a->url.host;
    a->gai.ar_request = &a->hints;
    a->gai_list[0] = &a->gai;
    if (getaddrinfo_a(GAI_NOWAIT, a->gai_list, 1, NULL) != 0) {
        finish(wh, a, "cannot start name resolution");
        attempt_free(a);
    }
}

/* Polls a resolution in progress; true when the attempt left RESOLVING. */
static bool poll_resolution(hub_webhooks_t *wh, attempt_t *a)
{
    int r = gai_error(&a->gai);
    if (r == EAI_INPROGRESS)
        return false;
    if (r != 0) {
        char msg[HUB_DELIVERY_ERROR_SIZE];
        snprintf(msg, sizeof(msg), "cannot resolve %.180s: %s", a->url.host, gai_strerror(r));
        finish(wh, a, msg);
        attempt_free(a);
        return true;
    }
    struct addrinfo *res = a->gai.ar_result;
    a->gai.ar_result = NULL;
    use_addresses(wh, a, res);
    freeaddrinfo(res);
    return true;
}

/* ---- starting attempts -------------------------------------------------- */

static bool in_flight(const hub_webhooks_t *wh, const char *webhook_id)
{
    for (const attempt_t *a = wh->attempts; a; a = a->next)
        if (!strcmp(a->webhook_id, webhook_id))
            return true;
    return false;
}

/* Gives up on a delivery without sending it. */
static void drop(hub_webhooks_t *wh, const hub_webhook_t *w, const hub_delivery_t *d,
                 const char *why)
{
    hub_delivery_outcome_t o = {.state = HUB_DELIVERY_DROPPED, .error = why};
    if (hub_store_delivery_record(wh->cfg.store, w->id, d->id, &o) < 0)
        cn_log_warn("webhook %s: cannot drop delivery %lld: %s", w->id, (long long)d->id,
                    hub_store_errmsg(wh->cfg.store));
    cn_log_warn("webhook %s: delivery %lld dropped: %s", w->id, (long long)d->id, why);
    hub_metrics_webhook_delivery(wh->cfg.metrics, HUB_WH_DROPPED);
}

/* Builds the signed request of the webhook's next delivery and starts it.
 * False when there was nothing to send. */
static bool start_next(hub_webhooks_t *wh, const hub_webhook_t *w)
{
    hub_store_t *st = wh->cfg.store;
    hub_delivery_t d;
    hub_event_t e = {0};
    if (hub_store_delivery_next(st, w->id, &d, &e) < 0)
        return false;
    if (e.id == 0) {
        drop(wh, w, &d, "its event no longer exists (pruned)");
        return true;
    }
    attempt_t *a = calloc(1, sizeof(*a));
    json_t *body = hub_webhook_payload(&e);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    hub_event_clear(&e);
    char secret[HUB_WEBHOOK_SECRET_SIZE] = "";
    if (!a || !text) {
        cn_log_warn("webhook %s: out of memory building a delivery", w->id);
        goto fail;
    }
    a->wh = wh;
    memcpy(a->webhook_id, w->id, sizeof(a->webhook_id));
    memcpy(a->workspace_id, w->workspace_id, sizeof(a->workspace_id));
    memcpy(a->url_text, w->url, sizeof(a->url_text));
    memcpy(a->event_type, d.event_type, sizeof(a->event_type));
    a->delivery_id = d.id;
    a->failures = w->failures;
    a->deadline_ms = cn_time_mono_ms() + wh->cfg.timeout_ms;
    a->body_len = strlen(text);
    a->buf = malloc(a->body_len + 1);
    if (!a->buf)
        goto fail;
    memcpy(a->buf, text, a->body_len);
    a->next = wh->attempts;
    wh->attempts = a;
    wh->in_flight++;

    const char *why = NULL;
    if (hub_store_webhook_secret(st, w->workspace_id, w->id, secret) < 0) {
        finish(wh, a, "the webhook's secret does not open with this hub's key");
        goto failed;
    }
    if (hub_webhook_sign(secret, hub_store_now(st) / 1000, a->buf, a->body_len, a->sig) < 0) {
        finish(wh, a, "cannot sign");
        goto failed;
    }
    if (!hub_webhook_url_parse(w->url, &a->url, &why)) {
        char msg[HUB_DELIVERY_ERROR_SIZE];
        snprintf(msg, sizeof(msg), "url %s", why);
        finish(wh, a, msg);
        goto failed;
    }
    bool v6 = strchr(a->url.host, ':') != NULL;
    bool default_port = a->url.port == (a->url.tls ? 443 : 80);
    if (default_port)
        snprintf(a->host_header, sizeof(a->host_header), v6 ? "[%s]" : "%s", a->url.host);
    else
        snprintf(a->host_header, sizeof(a->host_header), v6 ? "[%s]:%u" : "%s:%u", a->url.host,
                 (unsigned)a->url.port);
    snprintf(a->port_text, sizeof(a->port_text), "%u", (unsigned)a->url.port);
    sodium_memzero(secret, sizeof(secret));
    free(text);
    resolve(wh, a);
    return true;
failed:
    sodium_memzero(secret, sizeof(secret));
    free(text);
    attempt_free(a);
    return true;
fail:
    free(text);
    if (a)
        attempt_free(a);
    return false;
}

static void start_due(hub_webhooks_t *wh)
{
    if (wh->in_flight >= HUB_WEBHOOK_IN_FLIGHT_MAX)
        return;
    hub_webhook_list_t due = {0};
    if (hub_store_webhook_due(wh->cfg.store, HUB_WEBHOOK_IN_FLIGHT_MAX * 2, &due) < 0) {
        cn_log_warn("webhooks: cannot read the queue: %s", hub_store_errmsg(wh->cfg.store));
        return;
    }
    for (size_t i = 0; i < due.count && wh->in_flight < HUB_WEBHOOK_IN_FLIGHT_MAX; i++)
        if (!in_flight(wh, due.items[i].id))
            start_next(wh, &due.items[i]);
    hub_webhook_list_free(&due);
}

/* ---- the timer ---------------------------------------------------------- */

static void tick(lws_sorted_usec_list_t *sul)
{
    hub_webhooks_t *wh = lws_container_of(sul, hub_webhooks_t, tick);
    if (!wh->running)
        return;
    uint64_t now = cn_time_mono_ms();
    bool resolving = false;
    for (attempt_t *a = wh->attempts, *next; a; a = next) {
        next = a->next;
        if (a->phase == PH_RESOLVING && poll_resolution(wh, a))
            continue;
        if (now < a->deadline_ms) {
            resolving |= a->phase == PH_RESOLVING;
            continue;
        }
        if (a->phase == PH_RESOLVING) {
            /* A resolver thread may still write into it: only free it once
             * it is cancelled; otherwise it is polled again. */
            if (gai_cancel(&a->gai) == EAI_CANCELED) {
                finish(wh, a, "name resolution timed out");
                attempt_free(a);
            } else {
                resolving = true;
            }
        } else {
            cn_hpost_cancel(a->post);
            finish(wh, a, "timed out");
            attempt_free(a);
        }
    }
    if (now - wh->last_prune_ms >= PRUNE_EVERY_MS) {
        wh->last_prune_ms = now;
        size_t dropped = 0;
        if (hub_store_delivery_prune(wh->cfg.store, HUB_WEBHOOK_LOG_KEEP, HUB_WEBHOOK_QUEUE_MAX,
                                     &dropped) < 0)
            cn_log_warn("webhooks: cannot trim the queue: %s", hub_store_errmsg(wh->cfg.store));
        for (size_t i = 0; i < dropped; i++)
            hub_metrics_webhook_delivery(wh->cfg.metrics, HUB_WH_DROPPED);
        if (dropped)
            cn_log_warn("webhooks: %zu queued deliveries dropped (queue full)", dropped);
    }
    start_due(wh);
    for (attempt_t *a = wh->attempts; a; a = a->next)
        resolving |= a->phase == PH_RESOLVING;
    lws_sul_schedule(wh->ctx, 0, &wh->tick, tick,
                     (lws_usec_t)(resolving ? TICK_FAST_MS : TICK_MS) * LWS_US_PER_MS);
}

/* ---- lifecycle ---------------------------------------------------------- */

hub_webhooks_t *hub_webhooks_new(const hub_webhooks_config_t *cfg)
{
    hub_webhooks_t *wh = calloc(1, sizeof(*wh));
    if (!wh)
        return NULL;
    wh->cfg = *cfg;
    if (!wh->cfg.disable_after)
        wh->cfg.disable_after = HUB_WEBHOOK_DISABLE_AFTER;
    if (!wh->cfg.timeout_ms)
        wh->cfg.timeout_ms = HUB_WEBHOOK_TIMEOUT_MS_DEFAULT;
    wh->protocols[0].name = PROTOCOL_NAME;
    wh->protocols[0].callback = cn_hpost_callback;
    return wh;
}

int hub_webhooks_start(hub_webhooks_t *wh, struct lws_context *ctx)
{
    struct lws_context_creation_info vi;
    memset(&vi, 0, sizeof(vi));
    vi.vhost_name = "webhooks";
    vi.port = CONTEXT_PORT_NO_LISTEN;
    vi.protocols = wh->protocols;
    /* A client TLS context with the system's CAs, for https receivers. */
    vi.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    wh->vh = lws_create_vhost(ctx, &vi);
    if (!wh->vh)
        return CN_EIO;
    wh->ctx = ctx;
    wh->running = true;
    wh->last_prune_ms = cn_time_mono_ms() - PRUNE_EVERY_MS; /* trim once at start */
    lws_sul_schedule(ctx, 0, &wh->tick, tick, (lws_usec_t)TICK_FAST_MS * LWS_US_PER_MS);
    return 0;
}

void hub_webhooks_stop(hub_webhooks_t *wh)
{
    if (!wh || !wh->running)
        return;
    wh->running = false;
    lws_sul_cancel(&wh->tick);
    /* In-flight deliveries stay pending in the store: the next start sends
     * them again. Their connections close with the context; cancelled
     * first, they no longer call back into attempts that
     * hub_webhooks_free() frees. */
    for (attempt_t *a = wh->attempts; a; a = a->next) {
        if (a->phase == PH_RESOLVING && gai_cancel(&a->gai) != EAI_CANCELED)
            gai_suspend((const struct gaicb *const *)a->gai_list, 1, NULL);
        cn_hpost_cancel(a->post);
        a->post = NULL;
    }
}

void hub_webhooks_free(hub_webhooks_t *wh)
{
    if (!wh)
        return;
    while (wh->attempts) {
        attempt_t *a = wh->attempts;
        wh->attempts = a->next;
        if (a->phase == PH_RESOLVING && a->gai.ar_result)
            freeaddrinfo(a->gai.ar_result);
        attempt_free(a);
    }
    free(wh);
}
