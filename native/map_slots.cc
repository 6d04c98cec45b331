// The fast path for single-element map operations. Each BpfMap gets a slot:
// a key buffer and a value buffer allocated here, sized from the kernel's own
// map sizes, and shared with JavaScript as external ArrayBuffers. An
// operation then passes only the slot number: no typed-array inspection, no
// size checks per call (the buffers cannot be the wrong size), which halves
// the cost above the raw syscall. A slot dies with its fd (ForgetFd), so a
// reused fd number never reaches the old map's slot.
#include <cstdlib>
#include <vector>

#include "common.h"

namespace bpfkit {
namespace {

struct Slot {
  int fd = -1;  // -1: free or dead
  uint8_t* key = nullptr;
  uint8_t* value = nullptr;
  uint8_t* next = nullptr;  // GET_NEXT_KEY's output, key_size bytes
  bool keyless = false;
};

std::vector<Slot>& Slots() {
  static std::vector<Slot> slots;
  return slots;
}

void Free(Slot& s) {
  // The buffers belong to the ArrayBuffers' finalizers; only the fd link goes.
  s.fd = -1;
  s.key = nullptr;
  s.value = nullptr;
  s.next = nullptr;
}

const Slot& SlotArg(const Napi::CallbackInfo& info) {
  const Napi::Value v = info[0];
  if (!v.IsNumber()) ThrowType(info.Env(), "slot must be a number");
  const uint32_t i = v.As<Napi::Number>().Uint32Value();
  auto& slots = Slots();
  if (i >= slots.size() || slots[i].fd < 0) ThrowBpfError(info.Env(), "map", EBADF, std::string(), "file descriptor already closed");
  return slots[i];
}

uint64_t FlagsArg(const Napi::CallbackInfo& info, size_t i) {
  return info.Length() > i && !IsAbsent(info[i]) ? U64Arg(info[i], "flags") : 0;
}

long Elem(unsigned cmd, const Slot& s, bool with_value, uint64_t flags) {
  bpfattr::map_elem a{};
  a.map_fd = s.fd;
  a.key = s.keyless ? 0 : PtrToU64(s.key);
  a.value = with_value ? PtrToU64(s.value) : 0;
  a.flags = flags;
  return SysBpf(cmd, &a, BPFATTR_OFFSETOFEND(bpfattr::map_elem, flags));
}

Napi::ArrayBuffer Buffer(Napi::Env env, uint8_t* data, size_t size) {
  return Napi::ArrayBuffer::New(env, data, size, [](Napi::Env, void* p) { free(p); });
}

// mapSlotOpen(fd) -> { slot, key: ArrayBuffer(key_size), value: ArrayBuffer(value_bytes), next: ArrayBuffer(key_size) }
Napi::Value MapSlotOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info[0], "fd");
  const MapMeta m = MapMetaOf(env, fd, "map_slot");
  // calloc(0) may return NULL; a 1-byte buffer stands in for key-less maps.
  auto* key = static_cast<uint8_t*>(calloc(m.key_size ? m.key_size : 1, 1));
  auto* value = static_cast<uint8_t*>(calloc(m.value_bytes ? m.value_bytes : 1, 1));
  auto* next = static_cast<uint8_t*>(calloc(m.key_size ? m.key_size : 1, 1));
  if (!key || !value || !next) {
    free(key);
    free(value);
    free(next);
    ThrowBpfError(env, "map_slot", ENOMEM);
  }
  auto& slots = Slots();
  uint32_t i = 0;
  while (i < slots.size() && slots[i].fd >= 0) i++;
  if (i == slots.size()) slots.emplace_back();
  slots[i] = Slot{fd, key, value, next, m.key_size == 0};
  Napi::Object o = Napi::Object::New(env);
  o.Set("slot", i);
  o.Set("key", Buffer(env, key, m.key_size));
  o.Set("value", Buffer(env, value, m.value_bytes));
  o.Set("next", Buffer(env, next, m.key_size));
  return o;
}

Napi::Value MapSlotClose(const Napi::CallbackInfo& info) {
  const uint32_t i = info[0].As<Napi::Number>().Uint32Value();
  auto& slots = Slots();
  if (i < slots.size()) Free(slots[i]);
  return info.Env().Undefined();
}

// mapSlotLookupAndDelete(slot, flags?) -> bool (queue/stack pop, hash take)
Napi::Value MapSlotLookupAndDelete(const Napi::CallbackInfo& info) {
  const Slot& s = SlotArg(info);
  if (Elem(bpfattr::cmd::map_lookup_and_delete_elem, s, true, FlagsArg(info, 1)) == 0) return Napi::Boolean::New(info.Env(), true);
  if (errno == ENOENT) return Napi::Boolean::New(info.Env(), false);
  ThrowBpfError(info.Env(), "map_lookup_and_delete_elem", errno);
}

// Lookup, update and delete, the hottest calls, use the C Node-API directly,
// skipping the C++ wrapper's CallbackInfo and exception plumbing. Errors
// still come from the same BpfError factory.
//
// The slot argv[0] names, or null with an EBADF pending for a closed or
// unknown one.
const Slot* RawSlotAt(napi_env env, size_t argc, napi_value* argv) {
  uint32_t i = UINT32_MAX;
  if (argc < 1 || napi_get_value_uint32(env, argv[0], &i) != napi_ok || i >= Slots().size() || Slots()[i].fd < 0) {
    napi_throw(env, MakeBpfError(Napi::Env(env), "map", EBADF, std::string(), "file descriptor already closed"));
    return nullptr;
  }
  return &Slots()[i];
}

// (slot, flags?): the slot and the element flags.
const Slot* RawSlot(napi_env env, napi_callback_info cbinfo, uint64_t* flags) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, cbinfo, &argc, argv, nullptr, nullptr);
  const Slot* s = RawSlotAt(env, argc, argv);
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
  napi_throw(env, MakeBpfError(Napi::Env(env), command, errno));
  return nullptr;
}

napi_value RawLookup(napi_env env, napi_callback_info cbinfo) {
  uint64_t flags;
  const Slot* s = RawSlot(env, cbinfo, &flags);
  if (!s) return nullptr;
  return RawResult(env, Elem(bpfattr::cmd::map_lookup_elem, *s, true, flags), "map_lookup_elem", true);
}

napi_value RawUpdate(napi_env env, napi_callback_info cbinfo) {
  uint64_t flags;
  const Slot* s = RawSlot(env, cbinfo, &flags);
  if (!s) return nullptr;
  return RawResult(env, Elem(bpfattr::cmd::map_update_elem, *s, true, flags), "map_update_elem", false);
}

napi_value RawDelete(napi_env env, napi_callback_info cbinfo) {
  uint64_t flags;
  const Slot* s = RawSlot(env, cbinfo, &flags);
  if (!s) return nullptr;
  return RawResult(env, Elem(bpfattr::cmd::map_delete_elem, *s, false, 0), "map_delete_elem", true);
}

// mapSlotNextKey(slot, first) -> bool: GET_NEXT_KEY from the slot's key (or
// from the start when `first`) into the slot's next buffer; false at the end.
napi_value RawNextKey(napi_env env, napi_callback_info cbinfo) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, cbinfo, &argc, argv, nullptr, nullptr);
  const Slot* slot = RawSlotAt(env, argc, argv);
  if (!slot) return nullptr;
  bool first = false;
  if (argc > 1) napi_get_value_bool(env, argv[1], &first);
  const Slot& s = *slot;
  if (s.keyless) {
    napi_throw_type_error(env, nullptr, "this map has no keys");
    return nullptr;
  }
  bpfattr::map_elem a{};
  a.map_fd = s.fd;
  a.key = first ? 0 : PtrToU64(s.key);
  a.next_key = PtrToU64(s.next);
  return RawResult(env, SysBpf(bpfattr::cmd::map_get_next_key, &a, BPFATTR_OFFSETOFEND(bpfattr::map_elem, next_key)),
                   "map_get_next_key", true);
}

}  // namespace

void ForgetSlots(int fd) {
  for (auto& s : Slots()) {
    if (s.fd == fd) Free(s);
  }
}

void InitMapSlots(Napi::Env env, Napi::Object exports) {
  exports.Set("mapSlotOpen", Napi::Function::New(env, MapSlotOpen, "mapSlotOpen"));
  exports.Set("mapSlotClose", Napi::Function::New(env, MapSlotClose, "mapSlotClose"));
  for (auto [name, fn] : {std::pair{"mapSlotLookup", RawLookup}, {"mapSlotUpdate", RawUpdate}, {"mapSlotDelete", RawDelete},
                          {"mapSlotNextKey", RawNextKey}}) {
    napi_value f;
    napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, nullptr, &f);
    exports.Set(name, Napi::Value(env, f));
  }
  exports.Set("mapSlotLookupAndDelete", Napi::Function::New(env, MapSlotLookupAndDelete, "mapSlotLookupAndDelete"));
}

}  // namespace bpfkit
