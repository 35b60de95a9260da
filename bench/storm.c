// storm N: N double-forked orphans released at once; prints the time until
// PID 1 has reaped them all, then PID 1's peak RSS, and what PID 1 itself did
// meanwhile: its CPU time (user + system) and how often it woke up (voluntary
// context switches), which tell the init's share of the time from the
// kernel's own work of ending N processes. Run as the init's child.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static char buf[1 << 20];

static long others(pid_t self) { /* children of pid 1 other than us, live or zombie */
    int fd = open("/proc/1/task/1/children", O_RDONLY);
    ssize_t n, total = 0;
    while ((n = read(fd, buf + total, sizeof buf - 1 - total)) > 0) total += n;
    close(fd);
    buf[total] = 0;
    long count = 0;
    char *s = buf, *e;
    for (;;) { long v = strtol(s, &e, 10); if (e == s) break; if (v != self) count++; s = e; }
    return count;
}

/* PID 1's utime + stime (ms) and voluntary context switches, from /proc. */
static void pid1_usage(double *cpu_ms, long *wakeups) {
    FILE *f = fopen("/proc/1/stat", "r");
    unsigned long utime = 0, stime = 0;
    if (f) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = 0;
        fclose(f);
        char *s = strrchr(buf, ')'); /* the command name may hold spaces */
        if (s) sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime);
    }
    *cpu_ms = (utime + stime) * 1e3 / sysconf(_SC_CLK_TCK);
    *wakeups = 0; /* summed over PID 1's threads: an init may reap on another thread than its main one */
    DIR *tasks = opendir("/proc/1/task");
    struct dirent *task;
    while (tasks && (task = readdir(tasks)) != NULL) {
        if (task->d_name[0] == '.') continue;
        char path[300], line[256];
        long count = 0;
        snprintf(path, sizeof path, "/proc/1/task/%s/status", task->d_name);
        FILE *status = fopen(path, "r");
        while (status && fgets(line, sizeof line, status))
            if (sscanf(line, "voluntary_ctxt_switches: %ld", &count) == 1) break;
        if (status) fclose(status);
        *wakeups += count;
    }
    if (tasks) closedir(tasks);
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 10000;
    pid_t self = getpid();
    int p[2];
    if (pipe(p) != 0) return 2;
    for (long i = 0; i < n; i++) {
        pid_t a = fork();
        if (a == 0) {
            if (fork() == 0) { char c; close(p[1]); while (read(p[0], &c, 1) < 0 && errno == EINTR) {} _exit(0); }
            _exit(0);
        }
        while (waitpid(a, NULL, 0) < 0 && errno == EINTR) {}
    }
    close(p[0]);
    double cpu0, cpu1;
    long wake0, wake1;
    pid1_usage(&cpu0, &wake0);
    double t0 = now();
    close(p[1]);
    long left;
    while ((left = others(self)) > 0 && now() - t0 < 60) usleep(200);
    double ms = (now() - t0) * 1e3;
    pid1_usage(&cpu1, &wake1);
    char line[256] = "";
    FILE *status = fopen("/proc/1/status", "r");
    while (status && fgets(line, sizeof line, status)) if (strncmp(line, "VmHWM:", 6) == 0) break;
    if (status) fclose(status);
    long hwm = 0;
    sscanf(line, "VmHWM: %ld", &hwm);
    printf("reaped_ms=%.1f left=%ld pid1_hwm_kb=%ld pid1_cpu_ms=%.0f pid1_wakeups=%ld\n", ms, left, hwm,
           cpu1 - cpu0, wake1 - wake0);
    return left != 0;
}
