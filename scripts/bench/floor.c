// The floor of `npm run bench`: the same bpf(2) syscalls as the C baseline,
// made from inside the bench's Node process through the least a Node-API
// function can do. A prepare function (untimed) builds the attribute once and
// holds the buffers it points at; `call()` then takes no arguments, converts
// nothing, makes the syscall and returns an int. The JS loop around it writes
// the next key into the held key buffer, as the bpfkit loop does, so what the
// floor measures beyond C is Node itself: the call from JS into native code
// and back, and whatever the Node process does to the syscall (its threads,
// its memory). Bench-only: compiled at bench time against Node's headers; the
// shipped addon (native/) is not involved.
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <errno.h>
#include <linux/bpf.h>
#include <node_api.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LAST_BATCH 0x10000

enum kind { NONE, PLAIN, LOOKUP_BATCH, UPDATE_BATCH, NEXT_KEY, IDS };

static enum kind kind = NONE;
static int cmd;
static union bpf_attr attr;
static unsigned attr_size;
// Batch lookups and key walks carry a cursor from one call to the next.
static uint32_t batch_count;
static int first = 1;
static uint8_t cursor_a[64], cursor_b[64];
static uint32_t next_id;
// The buffers the attribute points at, kept alive until the next prepare.
static napi_ref held[3];

static long sys_bpf(int c, union bpf_attr *a, unsigned size) { return syscall(__NR_bpf, c, a, size); }

static napi_value int32(napi_env env, int32_t v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}

static napi_value fail(napi_env env, const char *msg) {
  napi_throw_error(env, NULL, msg);
  return NULL;
}

// ---- the timed functions ----

// One syscall on the prepared attribute: the result (>= 0) or -errno. For a
// batch lookup, the elements read (plus LAST_BATCH when it was the last call);
// for a key walk, 0 per key; for the ID walk, the program's id.
static napi_value call(napi_env env, napi_callback_info info) {
  (void)info;
  long r;
  switch (kind) {
    case PLAIN:
      r = sys_bpf(cmd, &attr, attr_size);
      return int32(env, r < 0 ? -errno : (int32_t)r);
    case UPDATE_BATCH:
      attr.batch.count = batch_count;
      r = sys_bpf(cmd, &attr, attr_size);
      return int32(env, r < 0 ? -errno : (int32_t)attr.batch.count);
    case LOOKUP_BATCH:
      attr.batch.in_batch = first ? 0 : (uint64_t)(uintptr_t)cursor_a;
      attr.batch.count = batch_count;
      r = sys_bpf(cmd, &attr, attr_size);
      if (r != 0) {
        if (errno != ENOENT) return int32(env, -errno);
        first = 1;
        return int32(env, LAST_BATCH + (int32_t)attr.batch.count);
      }
      memcpy(cursor_a, cursor_b, sizeof(cursor_a));
      first = 0;
      return int32(env, (int32_t)attr.batch.count);
    case NEXT_KEY: {
      // key: the previous key (none the first time); next_key: where the
      // kernel writes the next one. The two buffers swap, as in C.
      r = sys_bpf(cmd, &attr, attr_size);
      if (r != 0) {
        int e = errno;
        first = 1;
        attr.key = 0;
        attr.next_key = (uint64_t)(uintptr_t)cursor_a;
        return int32(env, -e);
      }
      uint64_t k = attr.next_key;
      attr.next_key = k == (uint64_t)(uintptr_t)cursor_a ? (uint64_t)(uintptr_t)cursor_b : (uint64_t)(uintptr_t)cursor_a;
      attr.key = k;
      return int32(env, 0);
    }
    case IDS:
      // As the C baseline: next id, fd by id, info, close; one program per call.
      for (;;) {
        union bpf_attr a;
        memset(&a, 0, sizeof(a));
        a.start_id = next_id;
        if (sys_bpf(BPF_PROG_GET_NEXT_ID, &a, offsetof(union bpf_attr, next_id) + 4) != 0) {
          int e = errno;
          next_id = 0;
          return int32(env, -e);
        }
        next_id = a.next_id;
        memset(&a, 0, sizeof(a));
        a.prog_id = next_id;
        int fd = (int)sys_bpf(BPF_PROG_GET_FD_BY_ID, &a, offsetof(union bpf_attr, open_flags) + 4);
        if (fd < 0) {
          if (errno == ENOENT) continue;
          return int32(env, -errno);
        }
        struct bpf_prog_info pi;
        memset(&pi, 0, sizeof(pi));
        memset(&a, 0, sizeof(a));
        a.info.bpf_fd = (uint32_t)fd;
        a.info.info_len = sizeof(pi);
        a.info.info = (uint64_t)(uintptr_t)&pi;
        r = sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a, offsetof(union bpf_attr, info.info) + 8);
        int e = errno;
        close(fd);
        return int32(env, r != 0 ? -e : (int32_t)next_id);
      }
    default:
      return fail(env, "floor: call() before a prepare");
  }
}

// closeFd(fd): closes what a prepared load returned (one more call, as bpfkit's close()).
static napi_value close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) return fail(env, "floor: closeFd(fd)");
  return int32(env, close(fd) == 0 ? 0 : -errno);
}

// pin(cpu): binds the calling thread (the bench's main thread) to one CPU;
// processes it forks (the C baseline) inherit that. pin(-1): every CPU the
// machine has again. 0 or -errno.
static napi_value pin(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t cpu;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_int32(env, argv[0], &cpu) != napi_ok || cpu < -1 || cpu >= CPU_SETSIZE) return fail(env, "floor: pin(cpu)");
  cpu_set_t set;
  CPU_ZERO(&set);
  if (cpu >= 0) {
    CPU_SET(cpu, &set);
  } else {
    long n = sysconf(_SC_NPROCESSORS_CONF);
    for (long i = 0; i < n && i < CPU_SETSIZE; i++) CPU_SET(i, &set);
  }
  return int32(env, sched_setaffinity(0, sizeof(set), &set) == 0 ? 0 : -errno);
}

// ---- preparing (untimed) ----

static void release(napi_env env) {
  for (int i = 0; i < 3; i++) {
    if (held[i]) napi_delete_reference(env, held[i]);
    held[i] = NULL;
  }
}

// The address of an ArrayBufferView's bytes (held until the next prepare), or
// 0 for null/undefined. -1 (with an exception) for anything else.
static int64_t hold(napi_env env, napi_value v, int slot, size_t *len) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_null || t == napi_undefined) {
    if (len) *len = 0;
    return 0;
  }
  bool is;
  void *data = NULL;
  size_t n = 0;
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type tt;
    size_t count;
    napi_get_typedarray_info(env, v, &tt, &count, &data, NULL, NULL);
    static const size_t width[] = {1, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8};
    n = count * (tt < sizeof(width) / sizeof(width[0]) ? width[tt] : 1);
  } else {
    fail(env, "floor: buffers must be typed arrays");
    return -1;
  }
  napi_create_reference(env, v, 1, &held[slot]);
  if (len) *len = n;
  return (int64_t)(uintptr_t)data;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < want) {
    fail(env, "floor: too few arguments");
    return -1;
  }
  return 0;
}

static int u32(napi_env env, napi_value v, uint32_t *out) {
  if (napi_get_value_uint32(env, v, out) != napi_ok) {
    fail(env, "floor: expected a number");
    return -1;
  }
  return 0;
}

// elem(cmd, fd, key, value, flags): lookup, update or delete of one element.
static napi_value prep_elem(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  uint32_t c, fd, flags;
  if (get_args(env, info, 5, argv) || u32(env, argv[0], &c) || u32(env, argv[1], &fd) || u32(env, argv[4], &flags)) return NULL;
  release(env);
  int64_t key = hold(env, argv[2], 0, NULL), value = hold(env, argv[3], 1, NULL);
  if (key < 0 || value < 0) return NULL;
  memset(&attr, 0, sizeof(attr));
  attr.map_fd = fd;
  attr.key = (uint64_t)key;
  attr.value = (uint64_t)value;
  attr.flags = flags;
  cmd = (int)c;
  attr_size = offsetof(union bpf_attr, flags) + sizeof(attr.flags);
  kind = PLAIN;
  return NULL;
}

// batch(cmd, fd, keys, values, count): LOOKUP_BATCH (a cursor carried from
// call to call, restarted after the last) or UPDATE_BATCH.
static napi_value prep_batch(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  uint32_t c, fd, count;
  if (get_args(env, info, 5, argv) || u32(env, argv[0], &c) || u32(env, argv[1], &fd) || u32(env, argv[4], &count)) return NULL;
  release(env);
  int64_t keys = hold(env, argv[2], 0, NULL), values = hold(env, argv[3], 1, NULL);
  if (keys < 0 || values < 0) return NULL;
  memset(&attr, 0, sizeof(attr));
  attr.batch.map_fd = fd;
  attr.batch.keys = (uint64_t)keys;
  attr.batch.values = (uint64_t)values;
  attr.batch.out_batch = (uint64_t)(uintptr_t)cursor_b;
  batch_count = count;
  first = 1;
  cmd = (int)c;
  attr_size = offsetof(union bpf_attr, batch.flags) + sizeof(attr.batch.flags);
  kind = c == BPF_MAP_LOOKUP_BATCH ? LOOKUP_BATCH : UPDATE_BATCH;
  return NULL;
}

// nextKey(fd): a key walk with GET_NEXT_KEY, -ENOENT at the end (then it starts over).
static napi_value prep_next_key(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  uint32_t fd;
  if (get_args(env, info, 1, argv) || u32(env, argv[0], &fd)) return NULL;
  release(env);
  memset(&attr, 0, sizeof(attr));
  attr.map_fd = fd;
  attr.next_key = (uint64_t)(uintptr_t)cursor_a;
  first = 1;
  cmd = BPF_MAP_GET_NEXT_KEY;
  attr_size = offsetof(union bpf_attr, next_key) + sizeof(attr.next_key);
  kind = NEXT_KEY;
  return NULL;
}

// ids(): the program ID walk with info, -ENOENT at the end (then it starts over).
static napi_value prep_ids(napi_env env, napi_callback_info info) {
  (void)info;
  release(env);
  next_id = 0;
  kind = IDS;
  return NULL;
}

// progLoad(type, insns, license): call() returns the new program's fd.
static napi_value prep_prog_load(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  uint32_t type;
  if (get_args(env, info, 3, argv) || u32(env, argv[0], &type)) return NULL;
  release(env);
  size_t len;
  int64_t insns = hold(env, argv[1], 0, &len), license = hold(env, argv[2], 1, NULL);
  if (insns < 0 || license < 0) return NULL;
  memset(&attr, 0, sizeof(attr));
  attr.prog_type = type;
  attr.insns = (uint64_t)insns;
  attr.insn_cnt = (uint32_t)(len / 8);
  attr.license = (uint64_t)license;
  cmd = BPF_PROG_LOAD;
  attr_size = sizeof(attr);
  kind = PLAIN;
  return NULL;
}

// testRun(progFd, data, repeat): BPF_PROG_TEST_RUN, as the C baseline makes it.
static napi_value prep_test_run(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  uint32_t fd, repeat;
  if (get_args(env, info, 3, argv) || u32(env, argv[0], &fd) || u32(env, argv[2], &repeat)) return NULL;
  release(env);
  size_t len;
  int64_t data = hold(env, argv[1], 0, &len);
  if (data < 0) return NULL;
  memset(&attr, 0, sizeof(attr));
  attr.test.prog_fd = fd;
  attr.test.data_in = (uint64_t)data;
  attr.test.data_size_in = (uint32_t)len;
  attr.test.repeat = repeat;
  cmd = BPF_PROG_TEST_RUN;
  attr_size = offsetof(union bpf_attr, test.duration) + 4;
  kind = PLAIN;
  return NULL;
}

NAPI_MODULE_INIT() {
  const napi_property_descriptor props[] = {
      {"call", NULL, call, NULL, NULL, NULL, napi_enumerable, NULL},
      {"closeFd", NULL, close_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pin", NULL, pin, NULL, NULL, NULL, napi_enumerable, NULL},
      {"elem", NULL, prep_elem, NULL, NULL, NULL, napi_enumerable, NULL},
      {"batch", NULL, prep_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"nextKey", NULL, prep_next_key, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ids", NULL, prep_ids, NULL, NULL, NULL, napi_enumerable, NULL},
      {"progLoad", NULL, prep_prog_load, NULL, NULL, NULL, napi_enumerable, NULL},
      {"testRun", NULL, prep_test_run, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}
