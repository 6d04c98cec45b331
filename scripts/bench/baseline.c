// The C baseline of `npm run bench`: the same operations bpfkit makes, as raw
// bpf(2) syscalls in a loop, on the maps and programs the benchmark hands over
// (inherited fds). Compiled at bench time with the system compiler.
//
//   baseline <op> [name=value ...]
//
// Prints one line: the nanoseconds per operation (per element, per record)
// of each repetition, space-separated. Node takes the median.
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long sys_bpf(int cmd, union bpf_attr *attr, size_t size) { return syscall(__NR_bpf, cmd, attr, size); }

static int nargs;
static char **args;

// name=value arguments; a missing one without a default is fatal.
static long long arg(const char *name, long long def) {
  size_t n = strlen(name);
  for (int i = 2; i < nargs; i++) {
    if (strncmp(args[i], name, n) == 0 && args[i][n] == '=') return strtoll(args[i] + n + 1, NULL, 0);
  }
  if (def < 0) {
    fprintf(stderr, "baseline: missing %s=\n", name);
    exit(2);
  }
  return def;
}
static const char *sarg(const char *name) {
  size_t n = strlen(name);
  for (int i = 2; i < nargs; i++) {
    if (strncmp(args[i], name, n) == 0 && args[i][n] == '=') return args[i] + n + 1;
  }
  fprintf(stderr, "baseline: missing %s=\n", name);
  exit(2);
}

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "baseline: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void *xcalloc(size_t n) {
  void *p = calloc(n ? n : 1, 1);
  if (!p) die("calloc");
  return p;
}

// ---- single elements ----

static int elem(int cmd, int fd, const void *key, void *value, uint64_t flags) {
  union bpf_attr a;
  memset(&a, 0, sizeof(a));
  a.map_fd = fd;
  a.key = (uint64_t)(uintptr_t)key;
  a.value = (uint64_t)(uintptr_t)value;
  a.flags = flags;
  return (int)sys_bpf(cmd, &a, offsetof(union bpf_attr, flags) + sizeof(a.flags));
}

// The map holds u32 keys 0..nkeys-1; each operation takes the next key.
static double lookup_run(int fd, uint32_t nkeys, long iters, void *value) {
  double t0 = now_ns();
  for (long i = 0; i < iters; i++) {
    uint32_t k = (uint32_t)(i % nkeys);
    if (elem(BPF_MAP_LOOKUP_ELEM, fd, &k, value, 0) != 0) die("lookup");
  }
  return (now_ns() - t0) / iters;
}

static double update_run(int fd, uint32_t nkeys, long iters, void *value) {
  double t0 = now_ns();
  for (long i = 0; i < iters; i++) {
    uint32_t k = (uint32_t)(i % nkeys);
    ((uint8_t *)value)[0] = (uint8_t)i;
    if (elem(BPF_MAP_UPDATE_ELEM, fd, &k, value, BPF_ANY) != 0) die("update");
  }
  return (now_ns() - t0) / iters;
}

// Deletes keys 0..nkeys-1, refilled (untimed) before each repetition.
static double delete_run(int fd, uint32_t nkeys, void *value) {
  for (uint32_t k = 0; k < nkeys; k++) {
    if (elem(BPF_MAP_UPDATE_ELEM, fd, &k, value, BPF_ANY) != 0) die("refill");
  }
  double t0 = now_ns();
  for (uint32_t k = 0; k < nkeys; k++) {
    if (elem(BPF_MAP_DELETE_ELEM, fd, &k, NULL, 0) != 0) die("delete");
  }
  return (now_ns() - t0) / nkeys;
}

// ---- batches ----

static size_t batch_attr_size(void) { return offsetof(union bpf_attr, batch.flags) + sizeof(((union bpf_attr *)0)->batch.flags); }

// Reads the whole map with LOOKUP_BATCH, `count` elements per call.
static double lookup_batch_run(int fd, uint32_t key_size, uint32_t value_bytes, uint32_t count, long *total) {
  uint8_t *keys = xcalloc((size_t)count * key_size), *values = xcalloc((size_t)count * value_bytes);
  uint8_t cur[16], next[16];
  int first = 1;
  long n = 0;
  double t0 = now_ns();
  for (;;) {
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.batch.map_fd = fd;
    a.batch.in_batch = first ? 0 : (uint64_t)(uintptr_t)cur;
    a.batch.out_batch = (uint64_t)(uintptr_t)next;
    a.batch.keys = (uint64_t)(uintptr_t)keys;
    a.batch.values = (uint64_t)(uintptr_t)values;
    a.batch.count = count;
    long r = sys_bpf(BPF_MAP_LOOKUP_BATCH, &a, batch_attr_size());
    if (r != 0 && errno != ENOENT) die("lookup_batch");
    n += a.batch.count;
    if (r != 0) break;
    memcpy(cur, next, sizeof(cur));
    first = 0;
  }
  double dt = now_ns() - t0;
  free(keys);
  free(values);
  *total = n;
  return n ? dt / n : 0;
}

static double update_batch_run(int fd, uint32_t value_bytes, uint32_t count, int round) {
  uint32_t *keys = xcalloc((size_t)count * 4);
  uint8_t *values = xcalloc((size_t)count * value_bytes);
  for (uint32_t i = 0; i < count; i++) {
    keys[i] = i;
    values[(size_t)i * value_bytes] = (uint8_t)(i + round);
  }
  union bpf_attr a;
  memset(&a, 0, sizeof(a));
  a.batch.map_fd = fd;
  a.batch.keys = (uint64_t)(uintptr_t)keys;
  a.batch.values = (uint64_t)(uintptr_t)values;
  a.batch.count = count;
  double t0 = now_ns();
  if (sys_bpf(BPF_MAP_UPDATE_BATCH, &a, batch_attr_size()) != 0) die("update_batch");
  double dt = now_ns() - t0;
  free(keys);
  free(values);
  return dt / count;
}

// ---- iteration ----

static double iterate_run(int fd, uint32_t key_size, long *total) {
  uint8_t a_key[64], b_key[64];
  uint8_t *cur = NULL, *next = a_key;
  long n = 0;
  double t0 = now_ns();
  for (;;) {
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.map_fd = fd;
    a.key = (uint64_t)(uintptr_t)cur;
    a.next_key = (uint64_t)(uintptr_t)next;
    if (sys_bpf(BPF_MAP_GET_NEXT_KEY, &a, offsetof(union bpf_attr, next_key) + 8) != 0) {
      if (errno == ENOENT) break;
      die("get_next_key");
    }
    n++;
    cur = next;
    next = next == a_key ? b_key : a_key;
  }
  (void)key_size;
  *total = n;
  return (now_ns() - t0) / (n ? n : 1);
}

// ---- mmap ----

static double mmap_read_run(const volatile uint64_t *base, size_t stride_words, uint32_t n, long iters) {
  uint64_t sum = 0;
  double t0 = now_ns();
  for (long i = 0; i < iters; i++) sum += base[(size_t)(i % n) * stride_words];
  double dt = now_ns() - t0;
  if (sum == 42) fputc(' ', stderr);
  return dt / iters;
}

// ---- map creation ----

// Creates an empty map and closes it, `iters` times.
static double map_create_run(uint32_t type, uint32_t key_size, uint32_t value_size, uint32_t max_entries, long iters) {
  double t0 = now_ns();
  for (long i = 0; i < iters; i++) {
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.map_type = type;
    a.key_size = key_size;
    a.value_size = value_size;
    a.max_entries = max_entries;
    int fd = (int)sys_bpf(BPF_MAP_CREATE, &a, sizeof(a));
    if (fd < 0) die("map_create");
    close(fd);
  }
  return (now_ns() - t0) / iters;
}

// ---- programs ----

static uint8_t *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) die(path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = xcalloc((size_t)n);
  if (fread(b, 1, (size_t)n, f) != (size_t)n) die("read");
  fclose(f);
  *len = (size_t)n;
  return b;
}

static double prog_load_run(uint32_t type, const uint8_t *insns, size_t len, long iters) {
  static const char license[] = "GPL";
  double t0 = now_ns();
  for (long i = 0; i < iters; i++) {
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.prog_type = type;
    a.insns = (uint64_t)(uintptr_t)insns;
    a.insn_cnt = (uint32_t)(len / 8);
    a.license = (uint64_t)(uintptr_t)license;
    int fd = (int)sys_bpf(BPF_PROG_LOAD, &a, sizeof(a));
    if (fd < 0) die("prog_load");
    close(fd);
  }
  return (now_ns() - t0) / iters;
}

static double test_run_run(int fd, uint32_t repeat, uint32_t data_size) {
  uint8_t *data = xcalloc(data_size);
  union bpf_attr a;
  memset(&a, 0, sizeof(a));
  a.test.prog_fd = fd;
  a.test.data_in = (uint64_t)(uintptr_t)data;
  a.test.data_size_in = data_size;
  a.test.repeat = repeat;
  double t0 = now_ns();
  if (sys_bpf(BPF_PROG_TEST_RUN, &a, offsetof(union bpf_attr, test.duration) + 4) != 0) die("test_run");
  double dt = now_ns() - t0;
  free(data);
  return dt / repeat;
}

// Every loaded program: next id, fd by id, info, close; as `bpftool prog show`.
static double ids_run(long *total) {
  uint32_t id = 0;
  long n = 0;
  double t0 = now_ns();
  for (;;) {
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.start_id = id;
    if (sys_bpf(BPF_PROG_GET_NEXT_ID, &a, offsetof(union bpf_attr, next_id) + 4) != 0) {
      if (errno == ENOENT) break;
      die("prog_get_next_id");
    }
    id = a.next_id;
    memset(&a, 0, sizeof(a));
    a.prog_id = id;
    int fd = (int)sys_bpf(BPF_PROG_GET_FD_BY_ID, &a, offsetof(union bpf_attr, open_flags) + 4);
    if (fd < 0) {
      if (errno == ENOENT) continue;
      die("prog_get_fd_by_id");
    }
    struct bpf_prog_info info;
    memset(&info, 0, sizeof(info));
    memset(&a, 0, sizeof(a));
    a.info.bpf_fd = (uint32_t)fd;
    a.info.info_len = sizeof(info);
    a.info.info = (uint64_t)(uintptr_t)&info;
    if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a, offsetof(union bpf_attr, info.info) + 8) != 0) die("obj_get_info_by_fd");
    close(fd);
    n++;
  }
  *total = n;
  return (now_ns() - t0) / (n ? n : 1);
}

// ---- ring buffer ----

static volatile uint64_t ring_sink;
static __attribute__((noinline)) void on_record(const uint8_t *data, uint32_t len) { ring_sink += data[0] + len; }

// A consumer's mappings of the ring: the consumer page (read-write), then
// the producer page and the data area twice (read-only).
struct ring {
  size_t page, size;
  uint64_t *consumer;
  const uint8_t *prod_map;
};
static const uint64_t *ring_producer(const struct ring *r) { return (const uint64_t *)r->prod_map; }
static const uint8_t *ring_data(const struct ring *r) { return r->prod_map + r->page; }

// Fills the ring with `records` records by running the producer program.
static void ring_fill(int prog_fd, uint32_t records, uint32_t data_size) {
  uint8_t *data_in = xcalloc(data_size);
  union bpf_attr a;
  memset(&a, 0, sizeof(a));
  a.test.prog_fd = prog_fd;
  a.test.data_in = (uint64_t)(uintptr_t)data_in;
  a.test.data_size_in = data_size;
  a.test.repeat = records;
  if (sys_bpf(BPF_PROG_TEST_RUN, &a, offsetof(union bpf_attr, test.duration) + 4) != 0) die("test_run (producer)");
  free(data_in);
}

static struct ring ring_map(int map_fd, uint32_t size) {
  struct ring r = {.page = (size_t)sysconf(_SC_PAGESIZE), .size = size};
  r.consumer = mmap(NULL, r.page, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
  if (r.consumer == MAP_FAILED) die("mmap consumer");
  r.prod_map = mmap(NULL, r.page + 2 * r.size, PROT_READ, MAP_SHARED, map_fd, (off_t)r.page);
  if (r.prod_map == MAP_FAILED) die("mmap producer");
  return r;
}

static void ring_unmap(struct ring *r) {
  munmap(r->consumer, r->page);
  munmap((void *)r->prod_map, r->page + 2 * r->size);
}

// Drains as libbpf's ring_buffer__consume does: each record read in place.
static long drain_in_place(struct ring *r) {
  const uint8_t *data = ring_data(r);
  const uint64_t mask = r->size - 1;
  long n = 0;
  uint64_t cons = __atomic_load_n(r->consumer, __ATOMIC_ACQUIRE);
  for (;;) {
    uint64_t prod = __atomic_load_n(ring_producer(r), __ATOMIC_ACQUIRE);
    if (cons >= prod) return n;
    while (cons < prod) {
      const uint8_t *hdr = data + (cons & mask);
      uint32_t len = __atomic_load_n((const uint32_t *)hdr, __ATOMIC_ACQUIRE);
      if (len & BPF_RINGBUF_BUSY_BIT) return n;
      uint32_t body = len & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
      if (!(len & BPF_RINGBUF_DISCARD_BIT)) {
        on_record(hdr + BPF_RINGBUF_HDR_SZ, body);
        n++;
      }
      cons += (BPF_RINGBUF_HDR_SZ + body + 7) & ~7ull;
      __atomic_store_n(r->consumer, cons, __ATOMIC_RELEASE);
    }
  }
}

// What bpfkit must do, as Node has no read-only ArrayBuffer to lend out the
// kernel's read-only pages: copy the records into a buffer of its own, then
// read them there. The chunks are RingBuffer's (lib/map/ringbuf.ts): a 64 KiB
// buffer and 1,024 record ends per batch; the copy is native/ringbuf.cc's
// ringbufConsume (space handed back every 64 KiB and at the batch's end).
#define COPY_ROOM (64 * 1024)
#define COPY_RECORDS 1024
static uint8_t copy_buf[COPY_ROOM];
static uint32_t copy_ends[COPY_RECORDS];

static size_t copy_batch(struct ring *r) {
  const uint8_t *data = ring_data(r);
  const uint64_t mask = r->size - 1;
  uint64_t cons = __atomic_load_n(r->consumer, __ATOMIC_RELAXED);
  const uint64_t prod = __atomic_load_n(ring_producer(r), __ATOMIC_ACQUIRE);
  uint64_t released = cons;
  size_t used = 0, n = 0;
  while (cons < prod && n < COPY_RECORDS) {
    const uint8_t *hdr = data + (cons & mask);
    uint32_t len = __atomic_load_n((const uint32_t *)hdr, __ATOMIC_ACQUIRE);
    if (len & BPF_RINGBUF_BUSY_BIT) break;
    uint32_t body = len & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
    if (!(len & BPF_RINGBUF_DISCARD_BIT)) {
      if (used + body > COPY_ROOM) {
        if (n == 0) {
          fprintf(stderr, "baseline: ringbufCopy: a %u-byte record is larger than the copy buffer\n", body);
          exit(1);
        }
        break;
      }
      memcpy(copy_buf + used, hdr + BPF_RINGBUF_HDR_SZ, body);
      used += body;
      copy_ends[n++] = (uint32_t)used;
    }
    cons += (BPF_RINGBUF_HDR_SZ + body + 7) & ~7ull;
    if (cons - released >= 64 * 1024) {
      __atomic_store_n(r->consumer, cons, __ATOMIC_RELEASE);
      released = cons;
    }
  }
  if (cons != released) __atomic_store_n(r->consumer, cons, __ATOMIC_RELEASE);
  return n;
}

static long drain_copied(struct ring *r) {
  long total = 0;
  for (;;) {
    size_t n = copy_batch(r);
    if (n == 0) return total;
    uint32_t start = 0;
    for (size_t i = 0; i < n; i++) {
      on_record(copy_buf + start, copy_ends[i] - start);
      start = copy_ends[i];
    }
    total += (long)n;
  }
}

// Fills the ring (untimed), maps it (untimed), then times one drain.
static double ringbuf_run(int map_fd, int prog_fd, uint32_t size, uint32_t records, uint32_t data_size, long (*drain)(struct ring *)) {
  ring_fill(prog_fd, records, data_size);
  struct ring r = ring_map(map_fd, size);
  double t0 = now_ns();
  long n = drain(&r);
  double dt = now_ns() - t0;
  ring_unmap(&r);
  if ((uint32_t)n != records) {
    fprintf(stderr, "baseline: ringbuf: %ld records, expected %u\n", n, records);
    exit(1);
  }
  return dt / n;
}

int main(int argc, char **argv) {
  nargs = argc;
  args = argv;
  if (argc < 2) {
    fprintf(stderr, "usage: baseline <op> [name=value ...]\n");
    return 2;
  }
  const char *op = argv[1];
  const int reps = (int)arg("reps", 7);
  const int warm = (int)arg("warmup", 1);
  double out[64];
  if (reps > 64) return 2;
  for (int r = -warm; r < reps; r++) {
    double v = 0;
    long total = 0;
    if (!strcmp(op, "lookup") || !strcmp(op, "update")) {
      int fd = (int)arg("fd", -1);
      void *value = xcalloc((size_t)arg("valueBytes", -1));
      long iters = arg("iters", -1);
      uint32_t nkeys = (uint32_t)arg("nkeys", -1);
      v = op[0] == 'l' ? lookup_run(fd, nkeys, iters, value) : update_run(fd, nkeys, iters, value);
      free(value);
    } else if (!strcmp(op, "delete")) {
      void *value = xcalloc((size_t)arg("valueBytes", -1));
      v = delete_run((int)arg("fd", -1), (uint32_t)arg("nkeys", -1), value);
      free(value);
    } else if (!strcmp(op, "lookupBatch")) {
      // iters= whole-map reads per repetition (a block long enough to time), averaged.
      long iters = arg("iters", 1);
      for (long i = 0; i < iters; i++) {
        v += lookup_batch_run((int)arg("fd", -1), 4, (uint32_t)arg("valueBytes", -1), (uint32_t)arg("count", -1), &total) / iters;
        if (total != arg("expect", -1)) {
          fprintf(stderr, "baseline: lookupBatch read %ld elements\n", total);
          return 1;
        }
      }
    } else if (!strcmp(op, "updateBatch")) {
      long iters = arg("iters", 1);
      for (long i = 0; i < iters; i++)
        v += update_batch_run((int)arg("fd", -1), (uint32_t)arg("valueBytes", -1), (uint32_t)arg("count", -1), (int)(r * iters + i)) / iters;
    } else if (!strcmp(op, "iterate")) {
      v = iterate_run((int)arg("fd", -1), 4, &total);
      if (total != arg("expect", -1)) {
        fprintf(stderr, "baseline: iterate walked %ld keys\n", total);
        return 1;
      }
    } else if (!strcmp(op, "mmapRead")) {
      int fd = (int)arg("fd", -1);
      uint32_t n = (uint32_t)arg("entries", -1);
      size_t stride = ((size_t)arg("valueSize", -1) + 7) & ~(size_t)7;
      size_t page = (size_t)sysconf(_SC_PAGESIZE);
      size_t len = (stride * n + page - 1) & ~(page - 1);
      void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
      if (m == MAP_FAILED) die("mmap");
      v = mmap_read_run(m, stride / 8, n, arg("iters", -1));
      munmap(m, len);
    } else if (!strcmp(op, "progLoad")) {
      size_t len;
      uint8_t *insns = read_file(sarg("file"), &len);
      v = prog_load_run((uint32_t)arg("type", -1), insns, len, arg("iters", -1));
      free(insns);
    } else if (!strcmp(op, "mapCreate")) {
      v = map_create_run((uint32_t)arg("type", -1), (uint32_t)arg("keySize", -1), (uint32_t)arg("valueSize", -1),
                         (uint32_t)arg("maxEntries", -1), arg("iters", -1));
    } else if (!strcmp(op, "testRun")) {
      v = test_run_run((int)arg("fd", -1), (uint32_t)arg("repeat", -1), (uint32_t)arg("dataSize", -1));
    } else if (!strcmp(op, "ids")) {
      v = ids_run(&total);
    } else if (!strcmp(op, "ringbuf") || !strcmp(op, "ringbufCopy")) {
      // iters= fill-and-drain cycles per repetition (the drain alone is a fraction of a millisecond), averaged.
      // ringbufCopy drains as bpfkit must (records copied out first), ringbuf as libbpf does.
      long (*drain)(struct ring *) = strcmp(op, "ringbufCopy") ? drain_in_place : drain_copied;
      long iters = arg("iters", 1);
      for (long i = 0; i < iters; i++)
        v += ringbuf_run((int)arg("fd", -1), (int)arg("prog", -1), (uint32_t)arg("size", -1), (uint32_t)arg("records", -1),
                         (uint32_t)arg("dataSize", -1), drain) / iters;
    } else {
      fprintf(stderr, "baseline: unknown op %s\n", op);
      return 2;
    }
    if (r >= 0) out[r] = v;
  }
  for (int r = 0; r < reps; r++) printf(r ? " %.3f" : "%.3f", out[r]);
  printf("\n");
  return 0;
}
