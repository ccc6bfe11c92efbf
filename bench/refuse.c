/* Refused-connect generator for `make bench` (capacity and latency).
 *
 *   refuse PORT SECONDS PROCS [RATE_PER_PROC]
 *
 * Forks PROCS processes; each connects to 127.0.0.1:PORT (a closed port) in a
 * loop for SECONDS, as fast as it can or paced at RATE_PER_PROC connects per
 * second. Each connect is refused by the kernel with a RST, which is four
 * abnormal events for the agent (send_reset NO_SOCKET, receive_reset in
 * SYN_SENT, SYN_SENT->CLOSE, sock_error 111). Prints one line:
 *   connects=N refused=M other_errors=K secs=S
 * Loopback only; bounded by SECONDS. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: refuse PORT SECONDS PROCS [RATE_PER_PROC]\n");
    return 2;
  }
  int port = atoi(argv[1]);
  double secs = atof(argv[2]);
  int procs = atoi(argv[3]);
  double rate = argc > 4 ? atof(argv[4]) : 0;
  if (port <= 0 || port > 65535 || secs <= 0 || secs > 120 || procs < 1 || procs > 64) {
    fprintf(stderr, "refuse: bad arguments\n");
    return 2;
  }
  /* per-process counters, shared with the parent */
  long *cnt = mmap(NULL, sizeof(long) * 3 * procs, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (cnt == MAP_FAILED) return 1;
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  double t0 = now();
  for (int p = 0; p < procs; p++) {
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
      long n = 0, refused = 0, other = 0;
      double start = now(), end = start + secs;
      for (;;) {
        double t = now();
        if (t >= end) break;
        if (rate > 0) {
          double due = start + n / rate;
          if (due > t) {
            struct timespec d = {(time_t)(due - t), (long)((due - t - (time_t)(due - t)) * 1e9)};
            nanosleep(&d, NULL);
            continue;
          }
        }
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) { other++; n++; continue; }
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
          if (errno == ECONNREFUSED) refused++; else other++;
        } else {
          other++; /* the port was open: not what we want */
        }
        close(fd);
        n++;
      }
      cnt[3 * p] = n;
      cnt[3 * p + 1] = refused;
      cnt[3 * p + 2] = other;
      _exit(0);
    }
  }
  for (int p = 0; p < procs; p++) wait(NULL);
  double el = now() - t0;
  long n = 0, r = 0, o = 0;
  for (int p = 0; p < procs; p++) { n += cnt[3 * p]; r += cnt[3 * p + 1]; o += cnt[3 * p + 2]; }
  printf("connects=%ld refused=%ld other_errors=%ld secs=%.3f\n", n, r, o, el);
  return 0;
}
