// A flood of drops unrelated to TCP: UDP datagrams to a closed loopback
// port, each freed by the kernel with kfree_skb reason NO_SOCKET (the same
// reason a refused SYN has, so the kfree_skb program's first filter
// passes and its protocol check must reject it).
//   udpflood SECS PORT
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 2;
    int port = argc > 2 ? atoi(argv[2]) : 9;
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    long n = 0;
    double t0 = now(), end = t0 + secs;
    char b[8] = "fivexx";
    while (now() < end) {
        for (int i = 0; i < 256; i++) {
            if (sendto(s, b, sizeof b, 0, (void *)&a, sizeof a) == sizeof b)
                n++;
        }
    }
    printf("datagrams=%ld secs=%.3f\n", n, now() - t0);
    return 0;
}
