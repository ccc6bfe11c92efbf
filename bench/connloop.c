// Connection-per-request on loopback, without a proxy: N iterations of
// connect, accept, close both ends (9 TCP state changes each, both sides
// in this process), for `secs` seconds. Prints its own CPU time per
// connection, which includes the kernel's work for every tracing hook the
// connection fires (dispatch and programs alike).
//   connloop SECS
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static double cpu(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 2;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (l < 0 || bind(l, (void *)&a, sizeof a) || listen(l, 128) || getsockname(l, (void *)&a, &len)) {
        perror("listen");
        return 1;
    }
    long n = 0;
    double t0 = now(), c0 = cpu(), end = t0 + secs;
    while (now() < end) {
        for (int i = 0; i < 64; i++) {
            int c = socket(AF_INET, SOCK_STREAM, 0);
            if (c < 0 || connect(c, (void *)&a, sizeof a)) {
                perror("connect");
                return 1;
            }
            int s = accept(l, NULL, NULL);
            if (s < 0) {
                perror("accept");
                return 1;
            }
            // The server closes first, as a proxy answering
            // `Connection: close` does: TIME_WAIT stays on the listener's
            // side, so the client's ephemeral ports are never exhausted.
            close(s);
            close(c);
            n++;
        }
    }
    double wall = now() - t0, used = cpu() - c0;
    printf("connects=%ld secs=%.3f cpu_s=%.4f cpu_us_per_conn=%.3f\n", n, wall, used, 1e6 * used / n);
    return 0;
}
