// The fast path for single-element map operations. Each BpfMap gets a slot:
// a key buffer and a value buffer allocated here, sized from the kernel's own
// map sizes, and shared with JavaScript as external ArrayBuffers. An
// operation then passes only the slot handle: no typed-array inspection, no
// size checks per call (the buffers cannot be the wrong size), which halves
// the cost above the raw syscall.
//
// A slot owns a dup of its map fd and shares ownership of its buffers with
// their ArrayBuffers (env_state.h), so neither a reused fd number nor
// buffers JavaScript dropped can make the kernel touch something else.
#include <unistd.h>

#include "env_state.h"
#include "promise_worker.h"  // HeldFd, HoldFd

namespace bpfkit {
namespace {

constexpr int kIndexBits = 24;
constexpr int64_t kIndexMask = (int64_t{1} << kIndexBits) - 1;
constexpr uint32_t kGenerationMask = (uint32_t{1} << 29) - 1;  // handles stay below 2^53
const char* const kClosed = "file descriptor already closed";

// A handle from JavaScript, or -1 for anything that is not one (NaN, a
// fraction, a negative or huge number must not round to a real slot).
int64_t HandleOf(double d) {
  if (!(d >= 0 && d < 9007199254740992.0) || d != static_cast<double>(static_cast<int64_t>(d))) return -1;
  return static_cast<int64_t>(d);
}

}  // namespace

SlotTable::~SlotTable() {
  for (auto& s : slots_) {
    if (s.fd >= 0) close(s.fd);
  }
}

double SlotTable::Open(int fd, int origin, const MapMeta& meta, std::shared_ptr<SlotMemory> memory) {
  uint32_t i;
  if (!free_.empty()) {
    i = free_.back();
    free_.pop_back();
  } else {
    if (slots_.size() > static_cast<size_t>(kIndexMask)) return -1;  // the index would spill into the generation
    i = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  MapSlot& s = slots_[i];
  s.fd = fd;
  s.origin = origin;
  s.keyless = meta.key_size == 0;
  s.meta = meta;
  s.memory = std::move(memory);
  by_origin_.emplace(origin, i);
  return static_cast<double>((static_cast<int64_t>(s.generation) << kIndexBits) | i);
}

const MapSlot* SlotTable::Find(int64_t handle) const {
  if (handle < 0) return nullptr;
  const uint64_t i = static_cast<uint64_t>(handle & kIndexMask);
  if (i >= slots_.size()) return nullptr;
  const MapSlot& s = slots_[i];
  if (s.fd < 0 || s.generation != static_cast<uint64_t>(handle >> kIndexBits)) return nullptr;
  return &s;
}

void SlotTable::Close(int64_t handle) {
  if (Find(handle) != nullptr) Release(static_cast<uint32_t>(handle & kIndexMask));
}

void SlotTable::ForgetOrigin(int origin) {
  auto range = by_origin_.equal_range(origin);
  std::vector<uint32_t> doomed;
  for (auto it = range.first; it != range.second; ++it) doomed.push_back(it->second);
  for (uint32_t i : doomed) Release(i);
}

void SlotTable::Release(uint32_t i) {
  MapSlot& s = slots_[i];
  auto range = by_origin_.equal_range(s.origin);
  for (auto it = range.first; it != range.second; ++it) {
    if (it->second == i) {
      by_origin_.erase(it);
      break;
    }
  }
  close(s.fd);
  s.fd = -1;
  s.origin = -1;
  s.memory.reset();  // the ArrayBuffers keep the memory while JavaScript holds them
  s.generation = (s.generation + 1) & kGenerationMask;
  free_.push_back(i);
}

void ForgetFd(napi_env env, int fd) { StateOf(env).slots.ForgetOrigin(fd); }

const MapSlot& SlotArg(const Napi::Value& v) {
  if (!v.IsNumber()) ThrowType(v.Env(), "slot must be a number");
  const MapSlot* s = StateOf(v.Env()).slots.Find(HandleOf(v.As<Napi::Number>().DoubleValue()));
  if (s == nullptr) ThrowBpfError(v.Env(), "map", EBADF, std::string(), kClosed);
  return *s;
}

OwnedFds::~OwnedFds() {
  for (int fd : fds_) close(fd);
}

namespace {

// Throws a BpfError from a C callback. The error factory is JavaScript and
// can itself throw (near the stack limit, "Maximum call stack size
// exceeded"); that must become the pending JavaScript exception, never a C++
// exception unwinding through V8's C frames (which aborts the process).
void ThrowFromC(napi_env env, const char* command, int err, const char* detail = nullptr) noexcept {
  try {
    napi_throw(env, MakeBpfError(Napi::Env(env), command, err, std::string(), detail));
  } catch (const Napi::Error& e) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending && !e.IsEmpty()) napi_throw(env, e.Value());
  } catch (...) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_error(env, nullptr, command);
  }
}

uint64_t FlagsArg(const Napi::CallbackInfo& info, size_t i) {
  return info.Length() > i && !IsAbsent(info[i]) ? U64Arg(info[i], "flags") : 0;
}

long Elem(unsigned cmd, const MapSlot& s, bool with_value, uint64_t flags) {
  bpfattr::map_elem a{};
  a.map_fd = s.fd;
  a.key = s.keyless ? 0 : PtrToU64(s.memory->key);
  a.value = with_value ? PtrToU64(s.memory->value) : 0;
  a.flags = flags;
  return SysBpf(cmd, &a, BPFATTR_OFFSETOFEND(bpfattr::map_elem, flags));
}

// An ArrayBuffer over `data` that holds a share of the slot's memory.
Napi::ArrayBuffer SharedBuffer(Napi::Env env, const std::shared_ptr<SlotMemory>& memory, uint8_t* data, size_t size) {
  auto* share = new std::shared_ptr<SlotMemory>(memory);
  try {
    return Napi::ArrayBuffer::New(env, data, size, [](Napi::Env, void*, std::shared_ptr<SlotMemory>* s) { delete s; },
                                  share);
  } catch (...) {
    delete share;
    throw;
  }
}

// mapSlotOpen(fd) -> { slot, key: ArrayBuffer(key_size), value: ArrayBuffer(value_bytes), meta: the sizes }
Napi::Value MapSlotOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int origin = FdArg(info[0], "fd");
  // The sizes are read from the slot's own dup, so they describe exactly the
  // map the slot will operate on.
  HeldFd fd = HoldFd(env, origin, "map_slot", "fd");
  const MapMeta m = MapMetaOf(env, fd.get(), "map_slot");
  auto memory = std::make_shared<SlotMemory>();
  // calloc(0) may return NULL; a 1-byte buffer stands in for key-less maps.
  memory->key = static_cast<uint8_t*>(calloc(m.key_size ? m.key_size : 1, 1));
  memory->value = static_cast<uint8_t*>(calloc(m.value_bytes ? m.value_bytes : 1, 1));
  if (!memory->key || !memory->value) ThrowBpfError(env, "map_slot", ENOMEM);
  Napi::Object o = Napi::Object::New(env);
  o.Set("key", SharedBuffer(env, memory, memory->key, m.key_size));
  o.Set("value", SharedBuffer(env, memory, memory->value, m.value_bytes));
  o.Set("meta", MapMetaObject(env, m));
  const double handle = StateOf(env).slots.Open(fd.get(), origin, m, memory);
  if (handle < 0) ThrowBpfError(env, "map_slot", EMFILE, std::string(), "too many map slots open in this environment");
  fd.Release();  // the slot's now
  o.Set("slot", handle);
  return o;
}

Napi::Value MapSlotClose(const Napi::CallbackInfo& info) {
  if (!info[0].IsNumber()) ThrowType(info.Env(), "slot must be a number");
  StateOf(info.Env()).slots.Close(HandleOf(info[0].As<Napi::Number>().DoubleValue()));
  return info.Env().Undefined();
}

// mapSlotLookupAndDelete(slot, flags?) -> bool (queue/stack pop, hash take)
Napi::Value MapSlotLookupAndDelete(const Napi::CallbackInfo& info) {
  const MapSlot& s = SlotArg(info[0]);
  if (Elem(bpfattr::cmd::map_lookup_and_delete_elem, s, true, FlagsArg(info, 1)) == 0) return Napi::Boolean::New(info.Env(), true);
  if (errno == ENOENT) return Napi::Boolean::New(info.Env(), false);
  ThrowBpfError(info.Env(), "map_lookup_and_delete_elem", errno);
}

// Lookup, update and delete, the hottest calls, use the C Node-API directly,
// skipping the C++ wrapper's CallbackInfo and exception plumbing. Errors
// still come from the same BpfError factory, through ThrowFromC.
//
// The slot argv[0] names, or null with an EBADF pending for a closed or
// unknown one.
const MapSlot* RawSlotAt(napi_env env, size_t argc, napi_value* argv) {
  double handle = -1;
  const MapSlot* s = nullptr;
  if (argc >= 1 && napi_get_value_double(env, argv[0], &handle) == napi_ok) s = StateOf(env).slots.Find(HandleOf(handle));
  if (s == nullptr) ThrowFromC(env, "map", EBADF, kClosed);
  return s;
}

// (slot, flags?): the slot and the element flags.
const MapSlot* RawSlot(napi_env env, napi_callback_info cbinfo, uint64_t* flags) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, cbinfo, &argc, argv, nullptr, nullptr);
  const MapSlot* s = RawSlotAt(env, argc, argv);
  if (!s) return nullptr;
  *flags = 0;
  if (argc > 1) {
    napi_valuetype t;
    napi_typeof(env, argv[1], &t);
    if (t == napi_number) {
      int64_t f = 0;
      napi_get_value_int64(env, argv[1], &f);
      if (f < 0) {
        napi_throw_range_error(env, nullptr, "flags must be a non-negative integer");
        return nullptr;
      }
      *flags = static_cast<uint64_t>(f);
    } else if (t == napi_bigint) {
      bool lossless = false;
      napi_get_value_bigint_uint64(env, argv[1], flags, &lossless);
    }
  }
  return s;
}

napi_value RawResult(napi_env env, long ret, const char* command, bool enoent_is_false) {
  napi_value out;
  if (ret == 0) {
    napi_get_boolean(env, true, &out);
    return out;
  }
  if (enoent_is_false && errno == ENOENT) {
    napi_get_boolean(env, false, &out);
    return out;
  }
  ThrowFromC(env, command, errno);
  return nullptr;
}

napi_value RawLookup(napi_env env, napi_callback_info cbinfo) {
  uint64_t flags;
  const MapSlot* s = RawSlot(env, cbinfo, &flags);
  if (!s) return nullptr;
  return RawResult(env, Elem(bpfattr::cmd::map_lookup_elem, *s, true, flags), "map_lookup_elem", true);
}

napi_value RawUpdate(napi_env env, napi_callback_info cbinfo) {
  uint64_t flags;
  const MapSlot* s = RawSlot(env, cbinfo, &flags);
  if (!s) return nullptr;
  return RawResult(env, Elem(bpfattr::cmd::map_update_elem, *s, true, flags), "map_update_elem", false);
}

napi_value RawDelete(napi_env env, napi_callback_info cbinfo) {
  uint64_t flags;
  const MapSlot* s = RawSlot(env, cbinfo, &flags);
  if (!s) return nullptr;
  return RawResult(env, Elem(bpfattr::cmd::map_delete_elem, *s, false, 0), "map_delete_elem", true);
}

// mapSlotNextKeys(slot, first, out, max) -> count: up to `max` GET_NEXT_KEY
// steps in one call, from the slot's key (from the start when `first`), each
// from the key before, into `out` back to back; fewer than `max` only at the
// end of the map. One call per 64 keys instead of one per key saves a key
// walk the crossing into native code and two copies per key: ~100 ns of a
// ~1 µs step. An error after some keys returns those; the next call meets
// it again.
Napi::Value MapSlotNextKeys(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const MapSlot& s = SlotArg(info[0]);
  const bool first = info[1].ToBoolean().Value();
  Bytes out = BytesArg(info[2], "out");
  const uint32_t max = U32Arg(info[3], "max");
  if (s.keyless) ThrowType(env, "this map has no keys");
  if (max == 0) ThrowRange(env, "max must be at least 1");
  RequireLength(env, out, static_cast<uint64_t>(max) * s.meta.key_size, "out");
  bpfattr::map_elem a{};
  a.map_fd = s.fd;
  const uint8_t* cursor = first ? nullptr : s.memory->key;
  uint32_t n = 0;
  for (; n < max; n++) {
    uint8_t* next = out.data + static_cast<size_t>(n) * s.meta.key_size;
    a.key = PtrToU64(cursor);
    a.next_key = PtrToU64(next);
    if (SysBpf(bpfattr::cmd::map_get_next_key, &a, BPFATTR_OFFSETOFEND(bpfattr::map_elem, next_key)) != 0) {
      if (errno == ENOENT || n > 0) break;
      ThrowBpfError(env, "map_get_next_key", errno);
    }
    cursor = next;
  }
  return Napi::Number::New(env, n);
}

}  // namespace

void InitMapSlots(Napi::Env env, Napi::Object exports) {
  exports.Set("mapSlotNextKeys", Napi::Function::New(env, MapSlotNextKeys, "mapSlotNextKeys"));
  exports.Set("mapSlotOpen", Napi::Function::New(env, MapSlotOpen, "mapSlotOpen"));
  exports.Set("mapSlotClose", Napi::Function::New(env, MapSlotClose, "mapSlotClose"));
  for (auto [name, fn] : {std::pair{"mapSlotLookup", RawLookup}, {"mapSlotUpdate", RawUpdate}, {"mapSlotDelete", RawDelete}}) {
    napi_value f;
    napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, nullptr, &f);
    exports.Set(name, Napi::Value(env, f));
  }
  exports.Set("mapSlotLookupAndDelete", Napi::Function::New(env, MapSlotLookupAndDelete, "mapSlotLookupAndDelete"));
}

}  // namespace bpfkit
