/* libconnect: the public API of the Connect SDK.
 *
 *   #include <connect/connect.h>
 *   cc app.c $(pkg-config --cflags --libs connect)
 *
 * It offers the error codes, the REST client for every hub API call the
 * CLI uses (cn_api.h) and the embeddable tunnel (tunnel.h). Only what these
 * headers declare CN_EXTERN is exported (docs/sdk.md lists it); the headers
 * need nothing but the C library and jansson, which connect.pc names under
 * Requires:. */
#ifndef CONNECT_CONNECT_H
#define CONNECT_CONNECT_H

#define CONNECT_VERSION_MAJOR 0
#define CONNECT_VERSION_MINOR 1
#define CONNECT_VERSION_PATCH 0
#define CONNECT_VERSION "0.1.0"

#include "cn_api.h"
#include "cn_defs.h"
#include "cn_err.h"
#include "tunnel.h"

#endif
