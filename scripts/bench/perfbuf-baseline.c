// The C baseline of scripts/bench/perfbuf.mjs: a perf buffer drained as
// libbpf's perf_buffer__consume does, on the map and producer program the
// benchmark hands over (fds 3 and 4). Pinned to one CPU, it opens that CPU's
// BPF_OUTPUT event and ring, stores it in the map, fills it by running the
// producer `records` times (untimed) and times the drain.
//
//   perfbuf-baseline cpu=N pages=N records=N dataSize=N reps=N
//
// Prints the nanoseconds per record of each repetition, space-separated.
#define _GNU_SOURCE
#include <errno.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long sys_bpf(int cmd, union bpf_attr *attr, size_t size) { return syscall(__NR_bpf, cmd, attr, size); }

static long long arg(int argc, char **argv, const char *name) {
  size_t n = strlen(name);
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], name, n) == 0 && argv[i][n] == '=') return strtoll(argv[i] + n + 1, NULL, 0);
  }
  fprintf(stderr, "perfbuf-baseline: missing %s=\n", name);
  exit(2);
}

static void die(const char *what) {
  fprintf(stderr, "perfbuf-baseline: %s: %s\n", what, strerror(errno));
  exit(1);
}

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static volatile uint64_t sink;
static __attribute__((noinline)) void on_sample(const uint8_t *data, uint32_t len) { sink += data[0] + len; }

int main(int argc, char **argv) {
  const int map_fd = 3, prog_fd = 4;
  const int cpu = (int)arg(argc, argv, "cpu");
  const size_t pages = (size_t)arg(argc, argv, "pages");
  const uint32_t records = (uint32_t)arg(argc, argv, "records");
  const uint32_t data_size = (uint32_t)arg(argc, argv, "dataSize");
  const int reps = (int)arg(argc, argv, "reps");
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) die("sched_setaffinity");

  struct perf_event_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.size = sizeof(attr);
  attr.type = PERF_TYPE_SOFTWARE;
  attr.config = PERF_COUNT_SW_BPF_OUTPUT;
  attr.sample_type = PERF_SAMPLE_RAW;
  attr.sample_period = 1;
  attr.wakeup_events = 1;
  int pfd = (int)syscall(__NR_perf_event_open, &attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
  if (pfd < 0) die("perf_event_open");
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  const size_t size = pages * page;
  uint8_t *base = mmap(NULL, page + size, PROT_READ | PROT_WRITE, MAP_SHARED, pfd, 0);
  if (base == MAP_FAILED) die("mmap");
  struct perf_event_mmap_page *meta = (struct perf_event_mmap_page *)base;
  const uint8_t *ring = base + page;
  if (ioctl(pfd, PERF_EVENT_IOC_ENABLE, 0) != 0) die("ioctl");
  uint32_t key = (uint32_t)cpu, value = (uint32_t)pfd;
  union bpf_attr a;
  memset(&a, 0, sizeof(a));
  a.map_fd = map_fd;
  a.key = (uint64_t)(uintptr_t)&key;
  a.value = (uint64_t)(uintptr_t)&value;
  if (sys_bpf(BPF_MAP_UPDATE_ELEM, &a, offsetof(union bpf_attr, flags) + 8) != 0) die("map_update_elem");

  uint8_t *data_in = calloc(data_size, 1);
  uint8_t *copy = malloc(65536);  // a record that wraps is copied out, as libbpf does
  for (int r = -1; r < reps; r++) {
    memset(&a, 0, sizeof(a));
    a.test.prog_fd = prog_fd;
    a.test.data_in = (uint64_t)(uintptr_t)data_in;
    a.test.data_size_in = data_size;
    a.test.repeat = records;
    if (sys_bpf(BPF_PROG_TEST_RUN, &a, offsetof(union bpf_attr, test.duration) + 4) != 0) die("test_run");
    long n = 0;
    double t0 = now_ns();
    uint64_t head = __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE);
    uint64_t tail = meta->data_tail;
    while (tail < head) {
      const size_t off = tail & (size - 1);
      const struct perf_event_header *hdr = (const void *)(ring + off);
      const uint8_t *rec = ring + off;
      if (off + hdr->size > size) {  // wraps: copy out
        size_t first = size - off;
        memcpy(copy, ring + off, first);
        memcpy(copy + first, ring, hdr->size - first);
        rec = copy;
      }
      if (hdr->type == PERF_RECORD_SAMPLE) {
        on_sample(rec + sizeof(*hdr) + 4, *(const uint32_t *)(rec + sizeof(*hdr)));
        n++;
      }
      tail += hdr->size;
    }
    __atomic_store_n(&meta->data_tail, tail, __ATOMIC_RELEASE);
    double dt = now_ns() - t0;
    if (n != (long)records) {
      fprintf(stderr, "perfbuf-baseline: %ld records, expected %u\n", n, records);
      return 1;
    }
    if (r >= 0) printf("%s%.3f", r ? " " : "", dt / n);
  }
  printf("\n");
  memset(&a, 0, sizeof(a));
  a.map_fd = map_fd;
  a.key = (uint64_t)(uintptr_t)&key;
  sys_bpf(BPF_MAP_DELETE_ELEM, &a, offsetof(union bpf_attr, flags) + 8);
  return 0;
}
