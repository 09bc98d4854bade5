// The physical limit: what fork() costs on this machine for a process of a
// given resident size, with nothing of Node in the way. Compiled at bench
// time (cc -O2); prints one line of JSON.
//
//   fork-cycle --mb N [--vmas V] --cycles M [--warmup W]
//       Allocates and touches N MiB (private, dirty, no huge pages), then
//       times M cycles of fork() + child _exit(0) + waitpid(). Per cycle:
//       forkUs   fork() as seen by the parent (call to return),
//       startUs  call to the child's first instruction (the child stamps
//                CLOCK_MONOTONIC into a shared page; the clock is the same
//                one node's process.hrtime() reads),
//       cycleUs  call to waitpid() returning.
//   fork-cycle --mb N [--vmas V] --throughput SECONDS --concurrency C
//       Forks and reaps children that _exit(0) at once, keeping C alive at a
//       time, for SECONDS; reports cycles completed per second.
//
// --vmas V splits the allocation into V/2 read-write regions separated by
// one-page PROT_NONE gaps, so the process has about V more mappings (VMAs):
// V8 maps its heap in 256 KiB pages, so a node process has thousands, and
// fork() copies each VMA as well as each page-table entry.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char* what) {
  fprintf(stderr, "fork-cycle: %s: %s\n", what, strerror(errno));
  exit(1);
}

// Touches every page with a non-zero byte so each one is private and dirty
// (a page never written maps the shared zero page and costs fork nothing).
static void touch(char* p, size_t len) {
  long page = sysconf(_SC_PAGESIZE);
  for (size_t off = 0; off < len; off += (size_t)page) p[off] = (char)(off / (size_t)page) | 1;
}

static void allocate(size_t mb, size_t vmas) {
  size_t total = mb << 20;
  if (total == 0) return;
  long page = sysconf(_SC_PAGESIZE);
  size_t regions = vmas / 2 > 0 ? vmas / 2 : 1;
  size_t chunk = (total / regions + (size_t)page - 1) & ~((size_t)page - 1);
  if (chunk == 0) chunk = (size_t)page;
  // One reservation, then read-write chunks with a PROT_NONE page between:
  // adjacent anonymous mappings with equal flags would merge into one VMA.
  size_t span = regions * (chunk + (size_t)page);
  char* base = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) die("mmap");
  // V8's heap does not get transparent huge pages; neither may this.
  madvise(base, span, MADV_NOHUGEPAGE);
  size_t done = 0;
  for (size_t r = 0; r < regions && done < total; r++) {
    char* p = base + r * (chunk + (size_t)page);
    size_t len = total - done < chunk ? total - done : chunk;
    if (mprotect(p, len, PROT_READ | PROT_WRITE) != 0) die("mprotect");
    touch(p, len);
    done += len;
  }
}

static long rss_kb(void) {
  FILE* f = fopen("/proc/self/status", "r");
  if (f == NULL) return -1;
  char line[256];
  long kb = -1;
  while (fgets(line, sizeof line, f) != NULL) {
    if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
  }
  fclose(f);
  return kb;
}

static long count_maps(void) {
  FILE* f = fopen("/proc/self/maps", "r");
  if (f == NULL) return -1;
  long n = 0;
  int c;
  while ((c = fgetc(f)) != EOF) n += c == '\n';
  fclose(f);
  return n;
}

static pid_t fork_exit(void) {
  pid_t pid;
  do pid = fork();
  while (pid < 0 && errno == EAGAIN);
  if (pid < 0) die("fork");
  if (pid == 0) _exit(0);
  return pid;
}

static void reap(pid_t pid) {
  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) die("waitpid");
  }
}

static void print_series(const char* name, const double* v, int n, int last) {
  printf("\"%s\":[", name);
  for (int i = 0; i < n; i++) printf("%s%.1f", i ? "," : "", v[i]);
  printf("]%s", last ? "" : ",");
}

static int latency(int cycles, int warmup) {
  volatile uint64_t* stamp = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (stamp == MAP_FAILED) die("mmap shared");
  double* fork_us = calloc((size_t)cycles, sizeof(double));
  double* start_us = calloc((size_t)cycles, sizeof(double));
  double* cycle_us = calloc((size_t)cycles, sizeof(double));
  for (int i = -warmup; i < cycles; i++) {
    *stamp = 0;
    uint64_t t0 = now_ns();
    pid_t pid = fork();
    if (pid == 0) {
      *stamp = now_ns();
      _exit(0);
    }
    if (pid < 0) die("fork");
    uint64_t t1 = now_ns();
    reap(pid);
    uint64_t t2 = now_ns();
    if (i < 0) continue;
    fork_us[i] = (double)(t1 - t0) / 1e3;
    start_us[i] = (double)(*stamp - t0) / 1e3;
    cycle_us[i] = (double)(t2 - t0) / 1e3;
  }
  printf("{\"rssKb\":%ld,\"maps\":%ld,", rss_kb(), count_maps());
  print_series("forkUs", fork_us, cycles, 0);
  print_series("startUs", start_us, cycles, 0);
  print_series("cycleUs", cycle_us, cycles, 1);
  printf("}\n");
  return 0;
}

static double cpu_ms(const struct rusage* r) {
  return (double)(r->ru_utime.tv_sec + r->ru_stime.tv_sec) * 1e3 + (double)(r->ru_utime.tv_usec + r->ru_stime.tv_usec) / 1e3;
}

static int throughput(double seconds, int concurrency) {
  struct rusage self0;
  getrusage(RUSAGE_SELF, &self0);
  uint64_t t0 = now_ns();
  uint64_t end = t0 + (uint64_t)(seconds * 1e9);
  long done = 0;
  int running = 0;
  while (now_ns() < end) {
    while (running < concurrency) {
      fork_exit();
      running++;
    }
    int status;
    if (waitpid(-1, &status, 0) > 0) {
      running--;
      done++;
    } else if (errno != EINTR) {
      die("waitpid");
    }
  }
  double elapsed = (double)(now_ns() - t0) / 1e9;
  while (running > 0) {
    int status;
    if (waitpid(-1, &status, 0) > 0 || errno != EINTR) running--;
  }
  // CPU per cycle, as for node: the parent's (fork and reaping) and the children's.
  // (Those reaped after the deadline count in `children` but not in `done`:
  // at most `concurrency` cycles.)
  struct rusage self, children;
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &children);
  double self_ms = cpu_ms(&self) - cpu_ms(&self0);
  double children_ms = cpu_ms(&children);
  printf("{\"rssKb\":%ld,\"maps\":%ld,\"concurrency\":%d,\"cycles\":%ld,\"seconds\":%.3f,\"perSecond\":%.1f,"
         "\"parentCpuMsPerRun\":%.3f,\"childCpuMsPerRun\":%.3f}\n",
         rss_kb(), count_maps(), concurrency, done, elapsed, (double)done / elapsed, self_ms / (double)done,
         children_ms / (double)done);
  return 0;
}

int main(int argc, char** argv) {
  size_t mb = 0, vmas = 0;
  int cycles = 100, warmup = 3, concurrency = 1;
  double seconds = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const char* k = argv[i];
    const char* v = argv[i + 1];
    if (strcmp(k, "--mb") == 0) mb = strtoul(v, NULL, 10);
    else if (strcmp(k, "--vmas") == 0) vmas = strtoul(v, NULL, 10);
    else if (strcmp(k, "--cycles") == 0) cycles = atoi(v);
    else if (strcmp(k, "--warmup") == 0) warmup = atoi(v);
    else if (strcmp(k, "--throughput") == 0) seconds = atof(v);
    else if (strcmp(k, "--concurrency") == 0) concurrency = atoi(v);
    else {
      fprintf(stderr, "fork-cycle: unknown option %s\n", k);
      return 2;
    }
  }
  if (cycles < 1 || concurrency < 1) {
    fprintf(stderr, "fork-cycle: --cycles and --concurrency must be at least 1\n");
    return 2;
  }
  allocate(mb, vmas);
  return seconds > 0 ? throughput(seconds, concurrency) : latency(cycles, warmup);
}
