// Memory-mapped BPF_F_MMAPABLE arrays: the map's values as an ArrayBuffer, so
// reads and writes from JavaScript cost no syscall. The mapping's length
// comes from the kernel's own sizes, never from the caller, so JavaScript
// cannot reach past it.
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"
#include "handles.h"
#include "promise_worker.h"  // HeldFd, HoldFd

namespace bpfkit {
namespace {

struct Mapping {
  void* addr;
  size_t length;
};

// Marks the ArrayBuffers mapMmap made, so mapUnmap can refuse every other
// buffer (a heap buffer, WebAssembly memory) before it touches its pages. A
// type tag lives on the JavaScript object, in the environment that made it,
// and cannot be forged from JavaScript.
// The tag is the one handles.h keeps with the others, so no two kinds share one.
constexpr const napi_type_tag& kMappingTag = tags::kMapping;

size_t PageSize() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

// The ArrayBuffer's finalizer: releases the address range, whether it still
// holds the map or the reservation mapUnmap left there.
void FinalizeMapping(Napi::Env, void*, Mapping* m) {
  munmap(m->addr, m->length);
  delete m;
}

// mapMmap(fd, writable) -> ArrayBuffer over round_up(round_up(value_size, 8) * max_entries, page).
Napi::Value MapMmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // Sizes and mapping from one dup: the length always matches the map mapped.
  HeldFd owned = HoldFd(env, FdArg(info[0], "fd"), "mmap", "fd");
  const int fd = owned.get();
  bool writable = info[1].ToBoolean();
  const MapMeta meta = MapMetaOf(env, fd, "mmap");
  if (meta.type != bpfattr::map_type::array || !(meta.map_flags & bpfattr::flag::MMAPABLE)) {
    ThrowType(env, "mmap: only array maps created with the 'mmapable' flag can be mapped");
  }
  const size_t stride = (static_cast<size_t>(meta.value_size) + 7) & ~size_t{7};
  const size_t page = PageSize();
  const size_t length = (stride * meta.max_entries + page - 1) & ~(page - 1);
  int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  void* addr = mmap(nullptr, length, prot, MAP_SHARED, fd, 0);
  if (addr == MAP_FAILED) ThrowSyscallError(env, "mmap", errno);
  auto* m = new Mapping{addr, length};
  Napi::ArrayBuffer ab;
  try {
    ab = Napi::ArrayBuffer::New(env, addr, length, FinalizeMapping, m);
  } catch (...) {
    munmap(addr, length);
    delete m;
    throw;
  }
  // The finalizer owns the mapping from here: a failed tag only leaves a
  // buffer mapUnmap refuses (it is still unmapped when collected).
  if (napi_type_tag_object(env, ab, &kMappingTag) != napi_ok) ThrowSyscallError(env, "mmap", ENOMEM);
  return ab;
}

// mapUnmap(arrayBuffer): unmaps now and detaches the buffer, so every view of
// it reads as empty instead of touching unmapped memory.
Napi::Value MapUnmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool ours = false;
  if (info[0].IsArrayBuffer()) napi_check_object_type_tag(env, info[0], &kMappingTag, &ours);
  if (!ours) ThrowType(env, "mapUnmap: buffer must be an ArrayBuffer made by mapMmap; nothing was unmapped");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  void* data = ab.Data();
  if (data == nullptr) return env.Undefined();  // already detached
  // The map's pages are replaced, in one step, by an inaccessible
  // reservation: the map is released now (freeze works again), while the
  // address range stays ours until the finalizer, so nothing else can be
  // mapped where a stale pointer might still look.
  if (mmap(data, ab.ByteLength(), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) == MAP_FAILED) {
    ThrowSyscallError(env, "munmap", errno);
  }
  ab.Detach();
  return env.Undefined();
}

}  // namespace

void InitMmap(Napi::Env env, Napi::Object exports) {
  exports.Set("mapMmap", Napi::Function::New(env, MapMmap, "mapMmap"));
  exports.Set("mapUnmap", Napi::Function::New(env, MapUnmap, "mapUnmap"));
}

}  // namespace bpfkit
