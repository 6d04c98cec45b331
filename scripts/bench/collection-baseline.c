// The collection rows' C baseline: libbpf (Debian's libbpf-dev) opening an
// object from memory and loading it, as a C loader does, `iters` times.
// Prints the mean nanoseconds per open + load + close. Built at bench time:
//   cc -O2 -o collection-baseline collection-baseline.c -lbpf
// Usage: collection-baseline <object.o> <iters> [warmup]
#include <bpf/libbpf.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

// Warnings only: libbpf's info and debug lines would be the bench's output.
static int warnings(enum libbpf_print_level level, const char *fmt, va_list args) {
  return level == LIBBPF_WARN ? vfprintf(stderr, fmt, args) : 0;
}

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int load_once(const void *buf, size_t size) {
  struct bpf_object *obj = bpf_object__open_mem(buf, size, NULL);
  if (!obj) {
    fprintf(stderr, "collection-baseline: bpf_object__open_mem failed\n");
    return -1;
  }
  int err = bpf_object__load(obj);
  if (err) fprintf(stderr, "collection-baseline: bpf_object__load failed: %d\n", err);
  bpf_object__close(obj);
  return err;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s <object.o> <iters> [warmup]\n", argv[0]);
    return 2;
  }
  FILE *f = fopen(argv[1], "rb");
  if (!f) {
    perror(argv[1]);
    return 1;
  }
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  void *buf = malloc(size);
  if (!buf || fread(buf, 1, size, f) != (size_t)size) {
    fprintf(stderr, "collection-baseline: cannot read %s\n", argv[1]);
    return 1;
  }
  fclose(f);
  libbpf_set_print(warnings);
  int iters = atoi(argv[2]);
  int warmup = argc > 3 ? atoi(argv[3]) : 1;
  for (int i = 0; i < warmup; i++)
    if (load_once(buf, size)) return 1;
  long long t0 = now_ns();
  for (int i = 0; i < iters; i++)
    if (load_once(buf, size)) return 1;
  printf("%.1f\n", (double)(now_ns() - t0) / (iters > 0 ? iters : 1));
  free(buf);
  return 0;
}
