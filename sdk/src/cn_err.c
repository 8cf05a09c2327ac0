/* Names for CN_E* codes. */
#include "cn_err.h"

const char *cn_strerror(int err)
{
    switch (err) {
    case CN_OK:
        return "success";
    case CN_EINVAL:
        return "invalid argument or malformed input";
    case CN_ENOMEM:
        return "out of memory";
    case CN_EAGAIN:
        return "resource temporarily unavailable";
    case CN_EPROTO:
        return "protocol violation";
    case CN_ETOOBIG:
        return "length above limit";
    case CN_EVERSION:
        return "unsupported protocol version";
    case CN_EAUTH:
        return "authentication failed";
    case CN_ECLOSED:
        return "closed";
    case CN_ESTATE:
        return "invalid state";
    case CN_ENOTFOUND:
        return "not found";
    case CN_EEXHAUSTED:
        return "exhausted";
    case CN_EFLOW:
        return "flow-control window exceeded";
    case CN_EIO:
        return "I/O error";
    case CN_ETIMEOUT:
        return "timed out";
    case CN_ECRYPTO:
        return "crypto library failure";
    case CN_EREFUSED:
        return "refused";
    case CN_EUNKNOWN:
        return "unknown type";
    }
    return "unknown error";
}
