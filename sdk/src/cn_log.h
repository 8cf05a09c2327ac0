/* One logging family for the whole project. Libraries never print on their
 * own: they return errors. The glue (link, hub, agent) logs through here,
 * naming the agent/tunnel/stream each line is about; secrets never. */
#ifndef CN_LOG_H
#define CN_LOG_H

enum cn_log_level { CN_LOG_ERROR = 0, CN_LOG_WARN = 1, CN_LOG_INFO = 2, CN_LOG_DEBUG = 3 };

/* Lines at or below `level` are written to stderr. Default: CN_LOG_INFO,
 * or the value of CONNECT_LOG (error|warn|info|debug) when set. */
void cn_log_set_level(int level);
int cn_log_get_level(void);
void cn_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define cn_log_error(...) cn_log(CN_LOG_ERROR, __VA_ARGS__)
#define cn_log_warn(...) cn_log(CN_LOG_WARN, __VA_ARGS__)
#define cn_log_info(...) cn_log(CN_LOG_INFO, __VA_ARGS__)
#define cn_log_debug(...) cn_log(CN_LOG_DEBUG, __VA_ARGS__)

#endif
