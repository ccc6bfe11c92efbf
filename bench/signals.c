/* Signal-flood generator for `make bench` (capacity beyond what refused
 * connects can produce on a small machine).
 *
 *   signals SECONDS RATE
 *
 * Forks one target that ignores SIGHUP, then sends it SIGHUP with kill(2)
 * for SECONDS at RATE signals per second (0: as fast as it can). Each kill
 * is one `signal_generate` event for the agent (result=ignored): a syscall
 * of about a microsecond, so one process can offer several hundred thousand
 * events per second where a refused connect costs ~30 us for 4 events.
 * Prints one line:
 *   signals=N secs=S
 * Bounded by SECONDS; the target is killed at the end. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: signals SECONDS RATE\n");
    return 2;
  }
  double secs = atof(argv[1]);
  double rate = atof(argv[2]);
  if (secs <= 0 || secs > 120 || rate < 0) {
    fprintf(stderr, "signals: bad arguments\n");
    return 2;
  }
  int ready[2];
  if (pipe(ready) != 0) return 1;
  pid_t target = fork();
  if (target < 0) return 1;
  if (target == 0) {
    signal(SIGHUP, SIG_IGN);
    close(ready[0]);
    if (write(ready[1], "x", 1) != 1) _exit(1);
    for (;;) pause();
  }
  char c;
  close(ready[1]);
  if (read(ready[0], &c, 1) != 1) return 1;
  long n = 0;
  double start = now(), end = start + secs;
  for (;;) {
    /* Check the clock every 64 signals: cheap pacing at high rates. */
    if ((n & 63) == 0) {
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
    }
    kill(target, SIGHUP);
    n++;
  }
  double el = now() - start;
  kill(target, SIGKILL);
  waitpid(target, NULL, 0);
  printf("signals=%ld secs=%.3f\n", n, el);
  return 0;
}
