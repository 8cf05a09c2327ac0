/* The options every `connect` command takes, before or after the command
 * name (main.c moves the ones given before it behind it). Parsing is the
 * SDK's table-driven cn_args, shared with connect-hub. */
#ifndef AGENT_ARGS_H
#define AGENT_ARGS_H

#include <stdbool.h>

#include "cn_args.h"

typedef struct agent_common {
    const char *config;
    const char *hub;
    const char *token;
    const char *token_file;
    const char *ca_file;
    bool allow_insecure;
    bool json;
    int log_level; /* 0: not given, else 1 + CN_LOG_* */
} agent_common_t;

/* "error|warn|info|debug": the order of enum cn_log_level. */
#define AGENT_LOG_LEVELS "error|warn|info|debug"

#define AGENT_COMMON_OPTIONS(c)                                                                    \
    {"config",                                                                                     \
     CN_OPT_STRING,                                                                                \
     &(c)->config,                                                                                 \
     0,                                                                                            \
     0,                                                                                            \
     "FILE",                                                                                       \
     "config file (default: $CONNECT_CONFIG, else ~/.config/connect/config.json)"},                \
        {"hub",                                                                                    \
         CN_OPT_STRING,                                                                            \
         &(c)->hub,                                                                                \
         0,                                                                                        \
         0,                                                                                        \
         "URL",                                                                                    \
         "hub URL, e.g. http://127.0.0.1:8080 (default: $CONNECT_HUB, else the config)"},          \
        {"token",                                                                                  \
         CN_OPT_STRING | CN_OPT_SECRET,                                                            \
         &(c)->token,                                                                              \
         0,                                                                                        \
         0,                                                                                        \
         "TOKEN",                                                                                  \
         "API token, '-' to read it from stdin (default: $CONNECT_TOKEN, else the config's for "   \
         "its hub; argv is visible to other users)"},                                              \
        {"token-file",                                                                             \
         CN_OPT_STRING,                                                                            \
         &(c)->token_file,                                                                         \
         0,                                                                                        \
         0,                                                                                        \
         "FILE",                                                                                   \
         "read the API token from the first line of FILE"},                                        \
        {"ca-file",                                                                                \
         CN_OPT_STRING,                                                                            \
         &(c)->ca_file,                                                                            \
         0,                                                                                        \
         0,                                                                                        \
         "FILE",                                                                                   \
         "verify an https hub against these CA certificates (PEM) instead of the system's "        \
         "(default: $CONNECT_CA_FILE, else the config)"},                                          \
        {"allow-insecure",                                                                         \
         CN_OPT_FLAG,                                                                              \
         &(c)->allow_insecure,                                                                     \
         0,                                                                                        \
         0,                                                                                        \
         NULL,                                                                                     \
         "permit a plain http:// hub that is not on loopback (secrets cross in cleartext)"},       \
        {"json", CN_OPT_FLAG, &(c)->json, 0, 0, NULL, "print JSON instead of text"},               \
    {                                                                                              \
        "log-level", CN_OPT_CHOICE, &(c)->log_level, 0, 0, AGENT_LOG_LEVELS,                       \
            "log threshold on stderr (default: $CONNECT_LOG, else the command's)"                  \
    }

#endif
