/* The agent daemon: one link to the hub, kept up with backoff, serving the
 * streams the hub opens.
 *
 * It owns an lws context (no listening port) holding the link (cn_link) and
 * a pipe (cn_pipe) per stream. It keeps the allow-list from the hub's
 * `hello` and `tunnels` messages (one tunnel's status from `tunnel_status`)
 * and dials, for each stream, only the
 * target of the tunnel the stream names (allowlist.h), and only when the
 * agent-local policy allows that target; everything else is refused. A
 * listed tunnel whose target the policy refuses is reported to the hub
 * (CONTROL "tunnel_error"), which puts it in error. When the link dies it
 * reconnects after a backoff delay (backoff.h), unless it is stopping or
 * enrolling. The hub's hello resets the backoff, so a link that was
 * admitted and then died comes back within the base delay; a cap on
 * attempts a minute keeps a flapping link from hammering the hub.
 *
 * The caller runs the loop: agent_daemon_service() returns at least every
 * 250 ms (and when a signal interrupts the poll), so the caller can check
 * its own flags between rounds and make blocking calls (e.g. cn_api) there,
 * never from inside the callbacks below.
 *
 *   d = agent_daemon_new(&cfg, err, sizeof(err));
 *   while (!stop) agent_daemon_service(d);
 *   agent_daemon_shutdown(d, AGENT_DAEMON_DRAIN_MS, &second_ctrl_c);
 */
#ifndef AGENT_DAEMON_H
#define AGENT_DAEMON_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "allowlist.h"
#include "cn_link.h"

struct json_t;

typedef struct agent_daemon agent_daemon_t;

#define AGENT_DAEMON_MAX_SERVE 64

/* Why a link went down, for on_down (borrowed for the call). */
typedef struct agent_down {
    int err;                 /* CN_E*, 0 after a local close */
    cn_link_reason_t reason; /* what to branch on */
    const char *why;         /* words for a log line or message */
    bool established;        /* the secure channel had come up (the hub holds the pinned key) */
    bool admitted;           /* a hello had arrived */
} agent_down_t;

typedef struct agent_daemon_config {
    const char *hub_url;     /* http[s]://HOST:PORT[/BASE]; the link goes to BASE/agent,
                              * over verified TLS (wss) for https */
    const char *ca_file;     /* https: verify the hub against this PEM file only; NULL = the
                              * system CA store */
    bool allow_insecure;     /* permit http:// to a host that is not loopback */
    const uint8_t *agent_sk; /* the agent's static X25519 private key (32 bytes) */
    const uint8_t *hub_pk;   /* the pinned hub public key (32 bytes) */
    const char *agent_id;    /* payload {"v":1,"agentId":ID}; also names log lines */
    const char *enroll;      /* instead: payload {"v":1,"enroll":SECRET}, and no reconnect */
    const char *share;       /* instead: payload {"v":1,"share":TOKEN}: a share redeemer
                              * (`connect reach SHARE_URL`) that serves nothing */
    /* When set, this link serves only these tunnels: their ids go in the
     * payload ("tunnels":[...]) so the hub routes only their streams here
     * (several links may share one agent identity: a daemon and some
     * `connect expose` processes), and streams for any other tunnel are
     * refused. At most AGENT_DAEMON_MAX_SERVE. */
    const char *const *serve;
    size_t nserve;
    /* This link serves no tunnel at all (a `connect reach` process): the
     * hub routes none of the agent's streams here. */
    bool serve_none;
    /* The config file whose "allow" list and exposed-target record form the
     * agent-local target policy (config.h), re-read with every tunnel list
     * from the hub. NULL: no local policy, every target the hub lists may
     * be dialled (tests and embedders that check targets themselves). */
    const char *policy_config;
    uint32_t backoff_base_ms;    /* 0 = AGENT_BACKOFF_BASE_MS */
    uint32_t backoff_cap_ms;     /* 0 = AGENT_BACKOFF_CAP_MS */
    uint32_t reconnects_per_min; /* 0 = AGENT_BACKOFF_PER_MIN (on average) */
    uint32_t reconnect_burst;    /* 0 = AGENT_BACKOFF_BURST (at once, before the cap) */
    cn_link_timing_t timing;
    /* Receive window this agent grants each stream of its link, and the
     * consumed bytes after which the credit goes back (cn_mux_config_t).
     * 0 = CONNECT_STREAM_WINDOW / CONNECT_WINDOW_UPDATE (bytes) from the
     * environment, else the multiplexer's defaults (2 MiB, a quarter of
     * the window). agent_daemon_new() refuses bad values with a message
     * naming the variable. */
    uint32_t stream_window, window_update;
    /* Microseconds a loop turn keeps checking for events before it sleeps
     * (cn_loop_set_busy_poll). 0 = CONNECT_BUSY_POLL from the environment,
     * else none. The epoll loop only: refused with CONNECT_EVENT_LOOP=poll
     * or uv, ignored with poll_loop. */
    uint32_t busy_poll_us;
    /* Run on lws's poll() loop rather than the epoll one (CONNECT_EVENT_LOOP
     * =poll does the same): the embedded tunnel does, since lws's libev
     * plugin logs a notice per socket event and an embedding process keeps
     * lws's default log level, which shows notices. */
    bool poll_loop;
    /* Protocol plugins for health probes of served targets (borrowed,
     * outlives the daemon; health.h, probe.h). NULL: no health probes. The
     * interval is CONNECT_HEALTH_INTERVAL_MS, else 10 s. */
    const struct plugins *plugins;

    /* The hub admitted us: its `hello` (borrowed for the call) arrived and
     * the allow-list is set. */
    void (*on_hello)(void *ctx, agent_daemon_t *d, const struct json_t *hello);
    /* The allow-list changed (after hello too). */
    void (*on_tunnels)(void *ctx, agent_daemon_t *d);
    /* The link closed (or could not be opened); see agent_down_t. A
     * reconnect is scheduled unless stopping or enrolling. */
    void (*on_down)(void *ctx, agent_daemon_t *d, const agent_down_t *down);
    void *ctx;
} agent_daemon_config_t;

struct agent_config;

/* Zeroes dc and fills in what every link of an enrolled agent takes from
 * its config file: the hub URL, its CA file and the plain-http consent,
 * the keys, the agent id and the local target policy. The caller adds the
 * rest (what it serves, callbacks). dc borrows cfg's strings and keys:
 * cfg must outlive agent_daemon_new(). */
void agent_daemon_config_from(agent_daemon_config_t *dc, const struct agent_config *cfg);

/* Checks the environment variables every link reads (CONNECT_EVENT_LOOP,
 * CONNECT_STREAM_WINDOW, CONNECT_WINDOW_UPDATE), as agent_daemon_new()
 * will, so that a command can refuse a bad one before it changes anything
 * (`connect expose` creates its tunnel first). 0, or CN_EINVAL with err. */
int agent_daemon_check_env(char *err, size_t errlen);

/* Creates the context and starts the first connection. NULL with err. The
 * config's strings and keys are copied. */
agent_daemon_t *agent_daemon_new(const agent_daemon_config_t *cfg, char *err, size_t errlen);
/* Runs one service round. Negative on an event loop failure. */
int agent_daemon_service(agent_daemon_t *d);
/* Aborts every pipe, closes the link, cancels reconnects. Idempotent. */
void agent_daemon_stop(agent_daemon_t *d);
/* True once stopping (or enrolling) and no link or pipe is left. */
bool agent_daemon_idle(const agent_daemon_t *d);
/* Destroys the context (closing what is still open) and frees. NULL ok. */
void agent_daemon_free(agent_daemon_t *d);
/* How long a command waits, after stopping, for the link's close handshake
 * to finish: the hub then logs a clean "agent stopping" close at once
 * instead of finding a dead link by pings seconds later. Pipes are aborted
 * (RST), not drained, so what is left is one close frame and its answer: a
 * round trip or two. 2 s covers slow links several times over, and an
 * impatient user cuts it short with a second Ctrl-C. */
#define AGENT_DAEMON_DRAIN_MS 2000

/* The one way a command ends a daemon: agent_daemon_stop(), service rounds
 * until idle, at most `ms` or until *cut_short (optional) is set, then
 * agent_daemon_free(). 0 when it drained, CN_ETIMEOUT when it gave up
 * waiting (everything is freed either way). NULL d is fine. */
int agent_daemon_shutdown(agent_daemon_t *d, unsigned ms, const volatile sig_atomic_t *cut_short);

/* Wakes a service round in progress (safe from a signal handler? no: from
 * another thread only, via lws_cancel_service). */
void agent_daemon_wake(agent_daemon_t *d);

/* A local listener for reach: every connection it accepts becomes a
 * stream (CN_KIND_RELAY) through the hub to the agent that exposes the
 * tunnel, end-to-end encrypted (cn_e2e.h) with that agent's static key as
 * the hub vouched for it. While the link is down, connections are refused
 * at once (RST, one log line); the listener stays bound and serves again
 * after the reconnect. Strings and the key are copied. */
typedef struct agent_reach_config {
    const char *tunnel_id;   /* the tunnel reached */
    const char *name;        /* its name, for log lines (optional) */
    const uint8_t *peer_key; /* the exposing agent's static public key (32 bytes) */
    const char *host;        /* the local address to bind, e.g. "127.0.0.1" */
    int port;                /* 0 = any free port */
    bool udp;                /* a UDP tunnel: bind a UDP port, one flow per sender */
} agent_reach_config_t;

/* Binds the listener. 0 with *bound_port (optional), or a negative CN_E*
 * with err: CN_EIO when the port cannot be bound (errno says why),
 * CN_EINVAL for a bad configuration. */
int agent_daemon_reach(agent_daemon_t *d, const agent_reach_config_t *cfg, int *bound_port,
                       char *err, size_t errlen);

/* The current allow-list (empty before the first hello). */
const agent_allowlist_t *agent_daemon_tunnels(const agent_daemon_t *d);
/* True while a link is admitted (hello received and not closed). */
bool agent_daemon_connected(const agent_daemon_t *d);
/* Streams being served right now. */
size_t agent_daemon_streams(const agent_daemon_t *d);
/* Workspace id from the last hello ("" before). */
const char *agent_daemon_workspace(const agent_daemon_t *d);

#endif
