/* HTTP/1.1 message framing for the HTTP edge, sans-IO: request and
 * response heads parsed in place, and body framers that say where a body
 * ends (Content-Length, chunked, or the end of the stream) without
 * changing a byte of it. The edge routes, authorises and forwards with the
 * one request parse this gives (docs/http-edge.md says why this is not
 * lws's parser).
 *
 * Strict where leniency lets two parsers disagree (request smuggling): CRLF
 * line ends only, no obsolete line folding, no whitespace before a header's
 * colon, Transfer-Encoding and Content-Length together refused, differing
 * Content-Length values refused, chunk sizes of at most 15 hex digits,
 * Transfer-Encoding other than exactly "chunked" refused on requests.
 *
 * Conventions: parse calls keep pointers into the caller's buffer (the head
 * is valid while those bytes are); nothing allocates; 0 or CN_E* codes. */
#ifndef HUB_HTTP1_H
#define HUB_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HUB_H1_HEAD_MAX 16384 /* longest head (request or response) */
#define HUB_H1_MAX_HEADERS 100
#define HUB_H1_LINE_MAX 8192 /* chunk-size line with extensions, or one trailer line */

typedef struct hub_h1_header {
    const char *name;
    size_t name_len;
    const char *value; /* without surrounding whitespace */
    size_t value_len;
} hub_h1_header_t;

typedef struct hub_h1_head {
    /* request */
    const char *method;
    size_t method_len;
    const char *target;
    size_t target_len;
    /* response */
    int status;
    /* both */
    int minor; /* HTTP/1.minor */
    size_t nheaders;
    hub_h1_header_t headers[HUB_H1_MAX_HEADERS];
    size_t head_len; /* bytes of the head, final empty line included */
} hub_h1_head_t;

/* Parses the head at buf[0..len). 1: complete (head->head_len bytes),
 * 0: more bytes needed, CN_EPROTO: malformed, CN_ETOOBIG: the head is
 * longer than HUB_H1_HEAD_MAX or has more than HUB_H1_MAX_HEADERS
 * headers. Empty lines before a request line are skipped (RFC 9112 2.2);
 * they count in head_len. */
int hub_h1_parse_request(const char *buf, size_t len, hub_h1_head_t *head);
int hub_h1_parse_response(const char *buf, size_t len, hub_h1_head_t *head);

/* The first header named `name` (case-insensitive), or NULL. */
const hub_h1_header_t *hub_h1_find(const hub_h1_head_t *h, const char *name);
/* Whether any `name` header lists `token` in its comma-separated value
 * (case-insensitive), e.g. Connection: keep-alive, Upgrade. */
bool hub_h1_has_token(const hub_h1_head_t *h, const char *name, const char *token);
/* Whether the header at index i is named `name` (case-insensitive). */
bool hub_h1_header_is(const hub_h1_header_t *hd, const char *name);

enum hub_h1_body_kind {
    HUB_H1_BODY_NONE = 0, /* no body: the message ends with its head */
    HUB_H1_BODY_LENGTH,   /* Content-Length bytes */
    HUB_H1_BODY_CHUNKED,  /* chunked, up to and including the trailers */
    HUB_H1_BODY_CLOSE,    /* a response delimited by the end of the stream */
};

typedef struct hub_h1_body {
    enum hub_h1_body_kind kind;
    uint64_t left; /* LENGTH: bytes still to come; CHUNKED: of this chunk */
    int state;     /* CHUNKED: where in the framing */
    size_t line;   /* CHUNKED: bytes of the current size or trailer line */
    unsigned digits;
    bool done;
} hub_h1_body_t;

/* The framing of a request's body (RFC 9112 6.3): 0 or CN_EPROTO for a
 * message whose length cannot be known safely (400). */
int hub_h1_request_body(const hub_h1_head_t *h, hub_h1_body_t *b);
/* The framing of a response's body to a request with `head_request`
 * (HEAD). 1xx, 204 and 304 have none. 0 or CN_EPROTO. */
int hub_h1_response_body(const hub_h1_head_t *h, bool head_request, hub_h1_body_t *b);
/* Scans body bytes: *used gets how many of data[0..len) belong to the
 * body (the rest starts the next message); b->done is set at its end
 * (never for CLOSE). 0 or CN_EPROTO (bad chunk framing). */
int hub_h1_body_feed(hub_h1_body_t *b, const uint8_t *data, size_t len, size_t *used);

/* Whether a header is hop-by-hop (RFC 9110 7.6.1) and so never forwarded:
 * Connection, Keep-Alive, Proxy-Connection, Proxy-Authenticate,
 * Proxy-Authorization, TE, Trailer, Upgrade (Transfer-Encoding is framing
 * and handled by the caller). Headers named in Connection are too: see
 * hub_h1_connection_names(). */
bool hub_h1_hop_by_hop(const hub_h1_header_t *hd);
/* Whether `hd` is named as a token in any Connection header of `h`. */
bool hub_h1_connection_names(const hub_h1_head_t *h, const hub_h1_header_t *hd);

#endif
