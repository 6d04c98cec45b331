// BPF ring buffer consumer (BPF_MAP_TYPE_RINGBUF, Linux 5.8+). The kernel
// exposes a consumer page (ours to write), a producer page and the data area
// mapped twice back to back, so a record that wraps reads as contiguous.
// Waiting is a uv_poll on the map fd on Node's own loop: no thread per
// buffer, no busy loop. Records are copied into a caller-owned buffer in
// batches, so draining costs one native call per batch, not per record.
#include <sys/mman.h>
#include <unistd.h>
#include <uv.h>

#include <memory>

#include "common.h"
#include "handles.h"
#include "poller.h"
#include "promise_worker.h"

namespace bpfkit {
namespace {

// Record header flags (include/uapi/linux/bpf.h: BPF_RINGBUF_BUSY_BIT and
// BPF_RINGBUF_DISCARD_BIT are fixed by the ABI; the header is 8 bytes).
constexpr uint32_t kBusy = 1u << 31;
constexpr uint32_t kDiscard = 1u << 30;
constexpr size_t kHeader = 8;

struct Ring {
  Napi::Env env;
  int fd = -1;  // a dup of the map's fd, ours: handed to the poller at the first wait
  size_t size = 0;  // data area, a power of two
  size_t page = 0;
  uint64_t* consumer = nullptr;          // consumer page (read-write)
  const uint8_t* producer_map = nullptr;  // producer page + data twice (read-only)
  Poller* poller = nullptr;
  bool waiting = false;
  Napi::FunctionReference on_ready;
  std::unique_ptr<Napi::AsyncContext> context;
  bool closed = false;

  explicit Ring(Napi::Env e) : env(e) {}
  const uint64_t* producer() const { return reinterpret_cast<const uint64_t*>(producer_map); }
  const uint8_t* data() const { return producer_map + page; }
};

// Drops the callback through the reference's destructor, which never throws;
// Reset() (and move assignment, which calls it) throws when Node-API refuses,
// as it may while the environment is torn down.
void DropCallback(Ring* r) { Napi::FunctionReference dropped(std::move(r->on_ready)); }

void Unmap(Ring* r) {
  if (r->consumer) munmap(r->consumer, r->page);
  if (r->producer_map) munmap(const_cast<uint8_t*>(r->producer_map), r->page + 2 * r->size);
  r->consumer = nullptr;
  r->producer_map = nullptr;
}

// Stops polling, unmaps and releases the ring's fd. The Ring itself lives
// until its handle is collected, so a handle used after close reads as closed.
void Close(Ring* r) {
  if (r->closed) return;
  r->closed = true;
  r->waiting = false;
  DropCallback(r);
  r->context.reset();
  if (r->poller != nullptr) {
    r->poller->Close();
    r->poller = nullptr;
  }
  if (r->fd >= 0) close(r->fd);
  r->fd = -1;
  Unmap(r);
}

void FinalizeRing(Napi::Env, Ring* r) {
  Close(r);
  delete r;
}

Ring* RingArg(const Napi::CallbackInfo& info) {
  Ring* r = HandleArg<Ring>(info[0], tags::kRingbuf, "ring", "ring buffer");
  if (r->closed) ThrowType(info.Env(), "ring buffer: already closed");
  return r;
}

// ringbufOpen(fd) -> handle
Napi::Value RingbufOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // The ring keeps its own dup: the sizes, the mappings and every later
  // wait are this map's, whatever the caller's number refers to by then.
  HeldFd held = HoldFd(env, FdArg(info[0], "fd"), "ringbuf", "fd");
  const int fd = held.get();
  const MapMeta meta = MapMetaOf(env, fd, "ringbuf");
  if (meta.type != bpfattr::map_type::ringbuf) ThrowType(env, "ring buffer: the map is not a ringbuf");
  auto r = std::make_unique<Ring>(env);
  r->fd = held.Release();
  r->size = meta.max_entries;
  r->page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* c = mmap(nullptr, r->page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (c == MAP_FAILED) {
    int err = errno;
    Close(r.get());
    ThrowSyscallError(env, "mmap", err, "mapping the ring buffer's consumer page");
  }
  r->consumer = static_cast<uint64_t*>(c);
  void* p = mmap(nullptr, r->page + 2 * r->size, PROT_READ, MAP_SHARED, fd, static_cast<off_t>(r->page));
  if (p == MAP_FAILED) {
    int err = errno;
    Close(r.get());
    ThrowSyscallError(env, "mmap", err, "mapping the ring buffer's data");
  }
  r->producer_map = static_cast<const uint8_t*>(p);
  r->context = std::make_unique<Napi::AsyncContext>(env, "bpfkit:ringbuf");
  auto handle = Napi::External<Ring>::New(env, r.release(), FinalizeRing);
  TagHandle(handle, tags::kRingbuf);
  return handle;
}

// ringbufConsume(handle, out, ends) -> number of records copied into `out`;
// record i spans out[ends[i-1] (or 0) .. ends[i]]. Returns -(bytes needed)
// when the next record alone does not fit in `out`.
Napi::Value RingbufConsume(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Ring* r = RingArg(info);
  Bytes out = BytesArg(info[1], "out");
  if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    ThrowType(env, "ends must be a Uint32Array");
  }
  Napi::Uint32Array ends = info[2].As<Napi::Uint32Array>();
  const size_t max_records = ends.ElementLength();
  uint32_t* end_out = ends.Data();
  uint64_t cons = __atomic_load_n(r->consumer, __ATOMIC_RELAXED);
  const uint64_t prod = __atomic_load_n(r->producer(), __ATOMIC_ACQUIRE);
  size_t used = 0;
  size_t n = 0;
  const uint64_t mask = r->size - 1;
  const uint8_t* const data = r->data();
  uint8_t* const dst = out.data;
  const size_t room = out.length;
  uint64_t released = cons;
  while (cons < prod && n < max_records) {
    const uint8_t* hdr = data + (cons & mask);
    const uint32_t len = __atomic_load_n(reinterpret_cast<const uint32_t*>(hdr), __ATOMIC_ACQUIRE);
    if (len & kBusy) break;  // reserved, not yet committed: later records wait for it
    const uint32_t body = len & ~(kBusy | kDiscard);
    if (!(len & kDiscard)) {
      if (used + body > room) {
        if (n == 0) {
          __atomic_store_n(r->consumer, cons, __ATOMIC_RELEASE);
          return Napi::Number::New(env, -static_cast<double>(body));
        }
        break;
      }
      memcpy(dst + used, hdr + kHeader, body);
      used += body;
      end_out[n++] = static_cast<uint32_t>(used);
    }
    cons += (kHeader + body + 7) & ~uint64_t{7};
    // Space goes back to the producer every 64 KiB, not after every record
    // (libbpf's way): one store to the shared page per stretch, not per record.
    if (cons - released >= 64 * 1024) {
      __atomic_store_n(r->consumer, cons, __ATOMIC_RELEASE);
      released = cons;
    }
  }
  if (cons != released) __atomic_store_n(r->consumer, cons, __ATOMIC_RELEASE);
  return Napi::Number::New(env, static_cast<double>(n));
}

// ringbufPending(handle) -> bytes the producer has written and we have not consumed.
Napi::Value RingbufPending(const Napi::CallbackInfo& info) {
  Ring* r = RingArg(info);
  uint64_t prod = __atomic_load_n(r->producer(), __ATOMIC_ACQUIRE);
  uint64_t cons = __atomic_load_n(r->consumer, __ATOMIC_RELAXED);
  return Napi::Number::New(info.Env(), static_cast<double>(prod - cons));
}

void OnPoll(uv_poll_t* handle, int status, int) {
  Ring* r = static_cast<Ring*>(Poller::OwnerOf(handle));
  if (r == nullptr) return;
  // One wake-up per wait: stop polling so that a level-triggered fd with
  // unconsumed data does not call back again before JavaScript drains it.
  r->poller->Stop();
  if (!r->waiting) return;
  r->waiting = false;
  Napi::Env env = r->env;
  Napi::HandleScope scope(env);
  Napi::Function cb = r->on_ready.Value();
  DropCallback(r);
  try {
    cb.MakeCallback(env.Global(), {Napi::Number::New(env, status)}, *r->context);
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env, e.Value());
  }
}

// The environment is going away with a wait pending: nobody is left to call.
void OnRingTeardown(void* owner) {
  Ring* r = static_cast<Ring*>(owner);
  r->poller = nullptr;  // the poller closes itself
  Close(r);
}

// ringbufWait(handle, callback): calls back once, when the fd is readable
// (status 0) or polling failed (negative libuv status).
Napi::Value RingbufWait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Ring* r = RingArg(info);
  if (!info[1].IsFunction()) ThrowType(env, "ringbufWait: callback must be a function");
  if (r->waiting) ThrowType(env, "ring buffer: already waiting");
  if (r->poller == nullptr) {
    int fd = r->fd;
    r->fd = -1;  // the poller owns it now, also when Open fails
    r->poller = Poller::Open(env, fd, OnRingTeardown, r);
  }
  int rc = r->poller->Start(UV_READABLE, OnPoll);
  if (rc != 0) ThrowSyscallError(env, "poll", -rc, "uv_poll_start");
  r->on_ready.Reset(info[1].As<Napi::Function>(), 1);
  r->waiting = true;
  return env.Undefined();
}

// ringbufCancel(handle): stops a wait without calling back.
Napi::Value RingbufCancel(const Napi::CallbackInfo& info) {
  Ring* r = RingArg(info);
  if (r->poller != nullptr) r->poller->Stop();
  r->waiting = false;
  DropCallback(r);
  return info.Env().Undefined();
}

Napi::Value RingbufClose(const Napi::CallbackInfo& info) {
  Close(HandleArg<Ring>(info[0], tags::kRingbuf, "ring", "ring buffer"));
  return info.Env().Undefined();
}

}  // namespace

void InitRingbuf(Napi::Env env, Napi::Object exports) {
  exports.Set("ringbufOpen", Napi::Function::New(env, RingbufOpen, "ringbufOpen"));
  exports.Set("ringbufConsume", Napi::Function::New(env, RingbufConsume, "ringbufConsume"));
  exports.Set("ringbufPending", Napi::Function::New(env, RingbufPending, "ringbufPending"));
  exports.Set("ringbufWait", Napi::Function::New(env, RingbufWait, "ringbufWait"));
  exports.Set("ringbufCancel", Napi::Function::New(env, RingbufCancel, "ringbufCancel"));
  exports.Set("ringbufClose", Napi::Function::New(env, RingbufClose, "ringbufClose"));
}

}  // namespace bpfkit
