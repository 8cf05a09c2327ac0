/* Exposes a local port through a Connect hub until Ctrl-C, then deletes the
 * tunnel. Credentials as the CLI's: `connect enroll` once, or CONNECT_CONFIG,
 * CONNECT_HUB, CONNECT_TOKEN.
 *   cc expose.c -o expose $(pkg-config --cflags --libs connect) && ./expose 8000 */
#define _POSIX_C_SOURCE 200809L
#include <connect/connect.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    char err[512];
    sigset_t stop; /* blocked before the tunnel's thread starts: only sigwait() sees them */
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    cn_tunnel_options_t o = {.local_port = argc > 1 ? atoi(argv[1]) : 8000};
    cn_tunnel_t *t = cn_tunnel_new(&o, err, sizeof(err));
    int rc = t ? cn_tunnel_start(t, 15000, err, sizeof(err)) : CN_EINVAL;
    if (rc == 0) {
        printf("%s\n", cn_tunnel_url(t)); /* an http tunnel: its public URL */
        fflush(stdout);
        int sig;
        sigwait(&stop, &sig);
        rc = cn_tunnel_stop(t, err, sizeof(err)); /* deletes the tunnel on the hub */
    }
    if (rc < 0)
        fprintf(stderr, "expose: %s\n", err);
    cn_tunnel_free(t);
    return rc < 0;
}
