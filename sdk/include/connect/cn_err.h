/* Error codes shared by every libconnect module.
 *
 * Functions return 0 on success or a negative CN_E* code. Only the top of a
 * program (CLI, HTTP response, log line) turns a code into words. */
#ifndef CN_ERR_H
#define CN_ERR_H

#include "cn_defs.h"

enum cn_err {
    CN_OK = 0,
    CN_EINVAL = -1,      /* invalid argument or malformed input */
    CN_ENOMEM = -2,      /* allocation failed */
    CN_EAGAIN = -3,      /* would block / no room now, retry later */
    CN_EPROTO = -4,      /* protocol violation by the peer */
    CN_ETOOBIG = -5,     /* length above a hard limit */
    CN_EVERSION = -6,    /* unsupported protocol version */
    CN_EAUTH = -7,       /* authentication failed (bad tag, wrong key) */
    CN_ECLOSED = -8,     /* object already closed */
    CN_ESTATE = -9,      /* call not valid in the current state */
    CN_ENOTFOUND = -10,  /* unknown id */
    CN_EEXHAUSTED = -11, /* ids, nonces or slots used up */
    CN_EFLOW = -12,      /* peer exceeded its flow-control window */
    CN_EIO = -13,        /* operating-system I/O error */
    CN_ETIMEOUT = -14,   /* deadline passed */
    CN_ECRYPTO = -15,    /* crypto library failure (not the peer's fault) */
    CN_EREFUSED = -16,   /* peer or policy refused */
    CN_EUNKNOWN = -17,   /* unknown frame type, opcode, option */
};

/* A static, human-readable name for an error code; never NULL. */
CN_EXTERN const char *cn_strerror(int err);

#endif
