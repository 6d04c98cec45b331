// Perf buffer consumer: the per-CPU rings behind a BPF_MAP_TYPE_PERF_EVENT_ARRAY
// that programs write with bpf_perf_event_output. For each CPU asked for, a
// PERF_COUNT_SW_BPF_OUTPUT software event is opened on that CPU, its ring
// (a control page and 2^n data pages) is mapped writable (so the kernel never
// overwrites unread records), and its fd is stored in the map at the CPU's
// index. One epoll fd over the events is what Node's loop polls (through
// Poller), so a reader of many CPUs costs one uv_poll, like a ring buffer.
//
// The control page is shared with the kernel and with anything else that maps
// the event: the consumer keeps its own tail, and every head and record size
// read from the ring is checked against the ring before a byte is copied. A
// record that does not fit ends the reading with an error; it never loops or
// reads past the mapping.
#include <linux/perf_event.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "handles.h"
#include "poller.h"
#include "promise_worker.h"

namespace bpfkit {
namespace {

// The handle's type tag (see handles.h: one random value per kind of handle).
// Kept here because handles.h belongs to the coordinator; it may move there.
constexpr napi_type_tag kPerfbufTag = {0x6270666b69745f70ULL, 0x65726662756631aaULL};

// Bounds for the arguments: the kernel allocates (and, for root, does not
// limit) pageCount pages per CPU, so an absurd count is refused here.
constexpr uint32_t kMaxPages = 1u << 16;
constexpr uint32_t kMaxCpus = 4096;

struct CpuRing {
  uint32_t cpu = 0;
  int fd = -1;                         // the perf event, ours
  perf_event_mmap_page* meta = nullptr;  // control page (data_head, data_tail)
  const uint8_t* data = nullptr;       // data pages, right after the control page
  uint64_t tail = 0;                   // our own consumer position, not the page's
  bool in_map = false;                 // we stored fd at index cpu of the map
};

struct PerfBuf {
  Napi::Env env;
  int map_fd = -1;    // a dup of the map's fd, for the entries at close
  int epoll_fd = -1;  // until the first wait hands it to the poller
  size_t page = 0;
  size_t size = 0;  // data bytes per CPU, a power of two
  std::vector<CpuRing> rings;
  size_t next = 0;  // the ring the next consume starts at (round robin)
  std::string broken;  // an error found after records were already copied: thrown by the next consume
  Poller* poller = nullptr;
  bool waiting = false;
  Napi::FunctionReference on_ready;
  std::unique_ptr<Napi::AsyncContext> context;
  bool closed = false;

  explicit PerfBuf(Napi::Env e) : env(e) {}
};

void DropCallback(PerfBuf* b) { Napi::FunctionReference dropped(std::move(b->on_ready)); }

long MapElem(unsigned cmd, int map_fd, uint32_t key, const void* value) {
  bpfattr::map_elem a{};
  a.map_fd = map_fd;
  a.key = PtrToU64(&key);
  a.value = PtrToU64(value);
  return SysBpf(cmd, &a, BPFATTR_OFFSETOFEND(bpfattr::map_elem, flags));
}

// Removes what one CPU's ring set up, in the reverse order: the map entry
// (so programs stop writing to it), the mapping, the event.
void ReleaseRing(PerfBuf* b, CpuRing& r) {
  if (r.in_map && b->map_fd >= 0) MapElem(bpfattr::cmd::map_delete_elem, b->map_fd, r.cpu, nullptr);
  r.in_map = false;
  if (r.meta != nullptr) munmap(r.meta, b->page + b->size);
  r.meta = nullptr;
  r.data = nullptr;
  if (r.fd >= 0) close(r.fd);
  r.fd = -1;
}

// Stops polling, deletes the map entries it set, unmaps and closes every fd.
// The PerfBuf lives until its handle is collected, so a handle used after
// close reads as closed.
void Close(PerfBuf* b) {
  if (b->closed) return;
  b->closed = true;
  b->waiting = false;
  DropCallback(b);
  b->context.reset();
  if (b->poller != nullptr) {
    b->poller->Close();  // closes the epoll fd
    b->poller = nullptr;
  }
  if (b->epoll_fd >= 0) close(b->epoll_fd);
  b->epoll_fd = -1;
  for (CpuRing& r : b->rings) ReleaseRing(b, r);
  if (b->map_fd >= 0) close(b->map_fd);
  b->map_fd = -1;
}

void FinalizePerfBuf(Napi::Env, PerfBuf* b) {
  Close(b);
  delete b;
}

PerfBuf* LiveArg(const Napi::CallbackInfo& info) {
  PerfBuf* b = HandleArg<PerfBuf>(info[0], kPerfbufTag, "perfBuffer", "perf buffer");
  if (b->closed) ThrowType(info.Env(), "perf buffer: already closed");
  return b;
}

// The CPU list: an array of distinct integers 0 .. maxEntries-1.
std::vector<uint32_t> CpuList(Napi::Env env, const Napi::Value& v, uint32_t max_entries) {
  if (!v.IsArray()) ThrowType(env, "perfbufOpen: cpus must be an array of CPU numbers");
  Napi::Array a = v.As<Napi::Array>();
  const uint32_t n = a.Length();
  if (n == 0) ThrowRange(env, "perfbufOpen: cpus is empty");
  if (n > kMaxCpus) ThrowRange(env, "perfbufOpen: more than " + std::to_string(kMaxCpus) + " cpus");
  std::vector<uint32_t> cpus;
  cpus.reserve(n);
  for (uint32_t i = 0; i < n; i++) {
    Napi::Value e = a.Get(i);
    if (!e.IsNumber()) ThrowType(env, "perfbufOpen: cpus[" + std::to_string(i) + "] must be a number");
    double d = e.As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d <= 4294967295.0) || d != static_cast<double>(static_cast<uint32_t>(d))) {
      ThrowRange(env, "perfbufOpen: cpus[" + std::to_string(i) + "] must be a non-negative integer");
    }
    const uint32_t cpu = static_cast<uint32_t>(d);
    if (cpu >= max_entries) {
      ThrowRange(env, "perfbufOpen: cpu " + std::to_string(cpu) + " is past the map's " +
                          std::to_string(max_entries) + " entries");
    }
    for (uint32_t c : cpus) {
      if (c == cpu) ThrowRange(env, "perfbufOpen: cpu " + std::to_string(cpu) + " is listed twice");
    }
    cpus.push_back(cpu);
  }
  return cpus;
}

// Opens, maps, enables and publishes one CPU's ring. On failure, what this
// CPU got so far stays recorded in `r` (ReleaseRing undoes it) and the
// error is thrown.
void OpenRing(PerfBuf* b, CpuRing& r, uint32_t wakeup_events) {
  Napi::Env env = b->env;
  const std::string where = "cpu " + std::to_string(r.cpu);
  perf_event_attr attr{};
  attr.size = sizeof(attr);
  attr.type = PERF_TYPE_SOFTWARE;
  attr.config = PERF_COUNT_SW_BPF_OUTPUT;
  attr.sample_type = PERF_SAMPLE_RAW;
  attr.sample_period = 1;
  attr.wakeup_events = wakeup_events;
  attr.disabled = 1;
  long ret = syscall(__NR_perf_event_open, &attr, -1, static_cast<int>(r.cpu), -1, PERF_FLAG_FD_CLOEXEC);
  r.fd = SafeFd(ret);
  if (r.fd < 0) {
    int err = errno;
    ThrowSyscallError(env, "perf_event_open", err, where.c_str(),
                      err == ENODEV ? "the CPU is offline or does not exist" : nullptr);
  }
  // Writable: the kernel then stops at our tail instead of overwriting.
  void* m = mmap(nullptr, b->page + b->size, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, 0);
  if (m == MAP_FAILED) {
    int err = errno;
    ThrowSyscallError(env, "mmap", err, ("the perf buffer of " + where).c_str(),
                      err == EPERM ? "over the locked-memory limit (perf_event_mlock_kb); use fewer pages" : nullptr);
  }
  r.meta = static_cast<perf_event_mmap_page*>(m);
  r.data = static_cast<const uint8_t*>(m) + b->page;
  r.tail = __atomic_load_n(&r.meta->data_tail, __ATOMIC_RELAXED);  // 0 for a fresh event
  if (ioctl(r.fd, PERF_EVENT_IOC_ENABLE, 0) != 0) ThrowSyscallError(env, "ioctl", errno, where.c_str());
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u32 = r.cpu;
  if (epoll_ctl(b->epoll_fd, EPOLL_CTL_ADD, r.fd, &ev) != 0) ThrowSyscallError(env, "epoll_ctl", errno, where.c_str());
  const uint32_t value = static_cast<uint32_t>(r.fd);
  if (MapElem(bpfattr::cmd::map_update_elem, b->map_fd, r.cpu, &value) != 0) {
    ThrowBpfError(env, "map_update_elem", errno, std::string(), ("the perf_event_array entry of " + where).c_str());
  }
  r.in_map = true;
}

// perfbufOpen(mapFd, cpus: number[], pageCount, wakeupEvents) -> handle
Napi::Value PerfbufOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  HeldFd held = HoldFd(env, FdArg(info[0], "mapFd"), "perfbuf", "mapFd");
  const MapMeta meta = MapMetaOf(env, held.get(), "perfbuf");
  if (meta.type != bpfattr::map_type::perf_event_array) ThrowType(env, "perf buffer: the map is not a perf_event_array");
  std::vector<uint32_t> cpus = CpuList(env, info[1], meta.max_entries);
  const uint32_t pages = U32Arg(info[2], "pageCount");
  if (pages == 0 || (pages & (pages - 1)) != 0 || pages > kMaxPages) {
    ThrowRange(env, "perfbufOpen: pageCount must be a power of two from 1 to " + std::to_string(kMaxPages) + ", got " +
                        std::to_string(pages));
  }
  const uint32_t wakeup = U32Arg(info[3], "wakeupEvents");
  if (wakeup == 0) ThrowRange(env, "perfbufOpen: wakeupEvents must be at least 1");

  auto b = std::make_unique<PerfBuf>(env);
  b->page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  b->size = b->page * pages;
  b->map_fd = held.Release();
  b->epoll_fd = SafeFd(epoll_create1(EPOLL_CLOEXEC));
  if (b->epoll_fd < 0) {
    int err = errno;
    Close(b.get());
    ThrowSyscallError(env, "epoll_create1", err);
  }
  b->rings.resize(cpus.size());
  for (size_t i = 0; i < cpus.size(); i++) {
    b->rings[i].cpu = cpus[i];
    try {
      OpenRing(b.get(), b->rings[i], wakeup);
    } catch (...) {
      Close(b.get());  // every ring opened so far, and the map entries they set
      throw;
    }
  }
  b->context = std::make_unique<Napi::AsyncContext>(env, "bpfkit:perfbuf");
  auto handle = Napi::External<PerfBuf>::New(env, b.release(), FinalizePerfBuf);
  TagHandle(handle, kPerfbufTag);
  return handle;
}

// Copies `len` bytes at ring offset `pos` (any value: taken modulo the size)
// into dst, in two parts when they wrap past the end of the ring.
void CopyOut(const uint8_t* data, size_t size, uint64_t pos, void* dst, size_t len) {
  const size_t at = static_cast<size_t>(pos & (size - 1));
  const size_t first = len < size - at ? len : size - at;
  memcpy(dst, data + at, first);
  if (first < len) memcpy(static_cast<uint8_t*>(dst) + first, data, len - first);
}

std::string Corrupt(const CpuRing& r, const std::string& what, uint64_t head, uint64_t tail) {
  return "perf buffer: cpu " + std::to_string(r.cpu) + ": " + what + " (head " + std::to_string(head) + ", tail " +
         std::to_string(tail) + "): the ring is corrupt; its unread bytes were dropped";
}

enum class Drain { kEmpty, kFull, kTooBig, kCorrupt };

struct Out {
  uint8_t* dst;
  size_t room;
  size_t used = 0;
  double* recs;  // [end, cpu, lost] per record
  size_t max_records;
  size_t n = 0;
  uint32_t need = 0;  // kTooBig: the bytes of the record that did not fit
  std::string error;  // kCorrupt
};

// Copies the records of one ring from our tail to the kernel's head into
// `out`, and gives the space back. Stops when out is full.
Drain DrainRing(PerfBuf* b, CpuRing& r, Out& out) {
  const size_t size = b->size;
  // Acquire: the records before head are visible once head is (the kernel's
  // smp_wmb before publishing it; libbpf's ring_buffer_read_head).
  const uint64_t head = __atomic_load_n(&r.meta->data_head, __ATOMIC_ACQUIRE);
  uint64_t tail = r.tail;
  Drain result = Drain::kEmpty;
  if (head - tail > size) {  // also head < tail, wrapped around as unsigned
    out.error = Corrupt(r, "the head is not within one ring of the tail", head, tail);
    tail = head;
    result = Drain::kCorrupt;
  }
  while (result == Drain::kEmpty && tail != head) {
    if (out.n >= out.max_records) {
      result = Drain::kFull;
      break;
    }
    const uint64_t avail = head - tail;
    perf_event_header hdr;
    if (avail < sizeof(hdr)) {
      out.error = Corrupt(r, std::to_string(avail) + " bytes left, less than a record header", head, tail);
      result = Drain::kCorrupt;
      break;
    }
    CopyOut(r.data, size, tail, &hdr, sizeof(hdr));
    if (hdr.size < sizeof(hdr) || hdr.size > avail) {
      out.error = Corrupt(r, "a record of " + std::to_string(hdr.size) + " bytes with " + std::to_string(avail) +
                                 " bytes left",
                          head, tail);
      result = Drain::kCorrupt;
      break;
    }
    if (hdr.type == PERF_RECORD_SAMPLE) {
      uint32_t raw = 0;
      if (hdr.size < sizeof(hdr) + sizeof(raw)) {
        out.error = Corrupt(r, "a sample of " + std::to_string(hdr.size) + " bytes", head, tail);
        result = Drain::kCorrupt;
        break;
      }
      CopyOut(r.data, size, tail + sizeof(hdr), &raw, sizeof(raw));
      if (raw > hdr.size - sizeof(hdr) - sizeof(raw)) {
        out.error = Corrupt(r, "a sample of " + std::to_string(raw) + " raw bytes in a record of " +
                                   std::to_string(hdr.size),
                            head, tail);
        result = Drain::kCorrupt;
        break;
      }
      if (raw > out.room - out.used) {
        out.need = raw;
        result = Drain::kTooBig;
        break;
      }
      CopyOut(r.data, size, tail + sizeof(hdr) + sizeof(raw), out.dst + out.used, raw);
      out.used += raw;
      out.recs[3 * out.n] = static_cast<double>(out.used);
      out.recs[3 * out.n + 1] = r.cpu;
      out.recs[3 * out.n + 2] = 0;
      out.n++;
    } else if (hdr.type == PERF_RECORD_LOST) {
      // struct { header; u64 id; u64 lost; }
      uint64_t lost = 0;
      if (hdr.size < sizeof(hdr) + 2 * sizeof(uint64_t)) {
        out.error = Corrupt(r, "a lost record of " + std::to_string(hdr.size) + " bytes", head, tail);
        result = Drain::kCorrupt;
        break;
      }
      CopyOut(r.data, size, tail + sizeof(hdr) + sizeof(uint64_t), &lost, sizeof(lost));
      out.recs[3 * out.n] = static_cast<double>(out.used);
      out.recs[3 * out.n + 1] = r.cpu;
      // Never 0 from the kernel; 0 would read as a sample.
      out.recs[3 * out.n + 2] = lost == 0 ? 1 : static_cast<double>(lost);
      out.n++;
    }
    // Other record types (throttling) carry nothing a reader of samples needs.
    tail += hdr.size;
  }
  if (result == Drain::kCorrupt) tail = head;  // drop what cannot be parsed: the next read starts clean
  if (tail != r.tail) {
    r.tail = tail;
    // Release: our reads of the records are done before the kernel may
    // write over them (libbpf's ring_buffer_write_tail).
    __atomic_store_n(&r.meta->data_tail, tail, __ATOMIC_RELEASE);
  }
  return result;
}

[[noreturn]] void ThrowCorrupt(Napi::Env env, const std::string& msg) { throw Napi::Error::New(env, msg); }

// perfbufConsume(handle, out, recs: Float64Array) -> records copied. Record i
// is [recs[3i] end offset in out, recs[3i+1] cpu, recs[3i+2] lost]: a sample's
// bytes are out[end(i-1) .. end(i)] and lost is 0; a lost-samples record has
// no bytes and lost > 0. Returns -(bytes needed) when the next sample alone
// does not fit in `out`.
Napi::Value PerfbufConsume(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  PerfBuf* b = LiveArg(info);
  Bytes dst = BytesArg(info[1], "out");
  if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    ThrowType(env, "recs must be a Float64Array");
  }
  Napi::Float64Array recs = info[2].As<Napi::Float64Array>();
  if (!b->broken.empty()) {
    std::string msg = std::move(b->broken);
    b->broken.clear();
    ThrowCorrupt(env, msg);
  }
  Out out{dst.data, dst.length, 0, recs.Data(), recs.ElementLength() / 3};
  const size_t count = b->rings.size();
  const size_t start = b->next < count ? b->next : 0;
  for (size_t k = 0; k < count; k++) {
    const size_t i = (start + k) % count;
    Drain d = DrainRing(b, b->rings[i], out);
    if (d == Drain::kEmpty) continue;
    b->next = i;  // resume with this ring
    if (d == Drain::kTooBig && out.n == 0) return Napi::Number::New(env, -static_cast<double>(out.need));
    if (d == Drain::kCorrupt) {
      if (out.n == 0) ThrowCorrupt(env, out.error);
      b->broken = std::move(out.error);  // the records read so far first
    }
    return Napi::Number::New(env, static_cast<double>(out.n));
  }
  b->next = count > 0 ? (start + 1) % count : 0;  // the next drain starts elsewhere: no CPU goes first forever
  return Napi::Number::New(env, static_cast<double>(out.n));
}

// perfbufPending(handle) -> bytes written by the kernel and not yet consumed
// (record headers included), over all CPUs.
Napi::Value PerfbufPending(const Napi::CallbackInfo& info) {
  PerfBuf* b = LiveArg(info);
  double total = 0;
  for (const CpuRing& r : b->rings) {
    const uint64_t head = __atomic_load_n(&r.meta->data_head, __ATOMIC_ACQUIRE);
    const uint64_t n = head - r.tail;
    total += static_cast<double>(n > b->size ? b->size : n);
  }
  return Napi::Number::New(info.Env(), total);
}

void OnPoll(uv_poll_t* handle, int status, int) {
  PerfBuf* b = static_cast<PerfBuf*>(Poller::OwnerOf(handle));
  if (b == nullptr) return;
  // One wake-up per wait, as for ring buffers.
  b->poller->Stop();
  if (!b->waiting) return;
  b->waiting = false;
  // epoll's ready list needs no emptying: polling the epoll fd polls its
  // ready events, and a perf event reports readable once per wake-up.
  Napi::Env env = b->env;
  Napi::HandleScope scope(env);
  Napi::Function cb = b->on_ready.Value();
  DropCallback(b);
  try {
    cb.MakeCallback(env.Global(), {Napi::Number::New(env, status)}, *b->context);
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env, e.Value());
  }
}

void OnTeardown(void* owner) {
  PerfBuf* b = static_cast<PerfBuf*>(owner);
  b->poller = nullptr;  // the poller closes itself
  Close(b);
}

// perfbufWait(handle, callback): calls back once, when a CPU's ring has
// records (status 0) or polling failed (negative libuv status).
Napi::Value PerfbufWait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  PerfBuf* b = LiveArg(info);
  if (!info[1].IsFunction()) ThrowType(env, "perfbufWait: callback must be a function");
  if (b->waiting) ThrowType(env, "perf buffer: already waiting");
  if (b->poller == nullptr) {
    int fd = b->epoll_fd;
    b->epoll_fd = -1;  // the poller owns it now, also when Open fails
    b->poller = Poller::Open(env, fd, OnTeardown, b);
  }
  int rc = b->poller->Start(UV_READABLE, OnPoll);
  if (rc != 0) ThrowSyscallError(env, "poll", -rc, "uv_poll_start");
  b->on_ready.Reset(info[1].As<Napi::Function>(), 1);
  b->waiting = true;
  return env.Undefined();
}

// perfbufCancel(handle): stops a wait without calling back.
Napi::Value PerfbufCancel(const Napi::CallbackInfo& info) {
  PerfBuf* b = LiveArg(info);
  if (b->poller != nullptr) b->poller->Stop();
  b->waiting = false;
  DropCallback(b);
  return info.Env().Undefined();
}

Napi::Value PerfbufClose(const Napi::CallbackInfo& info) {
  Close(HandleArg<PerfBuf>(info[0], kPerfbufTag, "perfBuffer", "perf buffer"));
  return info.Env().Undefined();
}

}  // namespace

void InitPerfBuffer(Napi::Env env, Napi::Object exports) {
  exports.Set("perfbufOpen", Napi::Function::New(env, PerfbufOpen, "perfbufOpen"));
  exports.Set("perfbufConsume", Napi::Function::New(env, PerfbufConsume, "perfbufConsume"));
  exports.Set("perfbufPending", Napi::Function::New(env, PerfbufPending, "perfbufPending"));
  exports.Set("perfbufWait", Napi::Function::New(env, PerfbufWait, "perfbufWait"));
  exports.Set("perfbufCancel", Napi::Function::New(env, PerfbufCancel, "perfbufCancel"));
  exports.Set("perfbufClose", Napi::Function::New(env, PerfbufClose, "perfbufClose"));
}

}  // namespace bpfkit
