// Map batches (BPF_MAP_*_BATCH, Linux 5.6+), synchronous and as Promises.
// Both forms check every buffer against the map's sizes, read from the dup
// the call works on, before the kernel sees it.
//
// The Promise form runs the syscall on a worker thread. It owns everything
// the kernel touches meanwhile: a dup of the map fd taken here (closing the
// map mid-call cannot redirect the batch to whatever reuses the number), and
// native copies of the buffers (JavaScript may change, detach or drop its
// own while the call runs). Results are copied back when the call settles.
#include <cstring>
#include <memory>
#include <vector>

#include "common.h"
#include "env_state.h"  // MapSlot, SlotArg
#include "promise_worker.h"

namespace bpfkit {
namespace {

// The batch cursor is a u32 bucket for hash maps and a key for the others, so
// it must hold max(key_size, 4) bytes.
uint32_t BatchCursorBytes(const MapMeta& m) { return m.key_size > 4 ? m.key_size : 4; }

enum class Kind { kLookup, kUpdate, kDelete };

// One batch call's arguments, checked. The Bytes point into JavaScript's
// buffers and are valid only during the synchronous part of the call.
struct BatchArgs {
  Kind kind;
  unsigned cmd;
  const char* name;
  HeldFd held;  // the dup an fd-based call works on (empty for a slot's call, which uses the slot's own)
  int fd = -1;
  MapMeta m;
  bool has_in = false;
  Bytes in, out, keys, values;
  uint32_t count = 0;
  uint64_t elem_flags = 0;
  uint64_t flags = 0;
};

uint64_t OptFlags(const Napi::Value& v, const char* name) { return IsAbsent(v) ? 0 : U64Arg(v, name); }

Bytes Sized(Napi::Env env, const Napi::Value& v, const char* name, uint64_t need) {
  Bytes b = BytesArg(v, name);
  RequireLength(env, b, need, name);
  return b;
}

// What every batch reads the same way: the map, then count, elemFlags and
// flags from argument `at` on. The map is an fd (a dup the call holds, and
// the sizes the kernel gives for it: a syscall and a readlink, ~5 µs) or,
// from a slot-taking function, a map slot (its dup and the sizes read when
// it opened). Slot calls are synchronous only: nothing here runs
// JavaScript, so the slot stays open until the syscall is made.
BatchArgs CommonArgs(const Napi::CallbackInfo& info, Kind kind, unsigned cmd, const char* name, size_t at, bool slot) {
  Napi::Env env = info.Env();
  BatchArgs a{kind, cmd, name};
  if (slot) {
    const MapSlot& s = SlotArg(info[0]);
    a.fd = s.fd;
    a.m = s.meta;
  } else {
    a.held = HoldFd(env, FdArg(info[0], "fd"), name, "fd");
    a.fd = a.held.get();
    a.m = MapMetaOf(env, a.fd, name);
  }
  a.count = U32Arg(info[at], "count");
  a.elem_flags = OptFlags(info[at + 1], "elemFlags");
  a.flags = OptFlags(info[at + 2], "flags");
  return a;
}

// lookup(fd, inBatch | null, outBatch, keys, values, count, elemFlags, flags)
BatchArgs LookupArgs(const Napi::CallbackInfo& info, unsigned cmd, const char* name, bool slot = false) {
  Napi::Env env = info.Env();
  BatchArgs a = CommonArgs(info, Kind::kLookup, cmd, name, 5, slot);
  if (a.count == 0) ThrowRange(env, "count must be at least 1");
  a.has_in = !IsAbsent(info[1]);
  if (a.has_in) a.in = Sized(env, info[1], "inBatch", BatchCursorBytes(a.m));
  a.out = Sized(env, info[2], "outBatch", BatchCursorBytes(a.m));
  a.keys = Sized(env, info[3], "keys", static_cast<uint64_t>(a.count) * a.m.key_size);
  a.values = Sized(env, info[4], "values", static_cast<uint64_t>(a.count) * a.m.value_bytes);
  return a;
}

// update(fd, keys, values, count, elemFlags, flags)
BatchArgs UpdateArgs(const Napi::CallbackInfo& info, bool slot = false) {
  Napi::Env env = info.Env();
  BatchArgs a = CommonArgs(info, Kind::kUpdate, bpfattr::cmd::map_update_batch, "map_update_batch", 3, slot);
  a.keys = Sized(env, info[1], "keys", static_cast<uint64_t>(a.count) * a.m.key_size);
  a.values = Sized(env, info[2], "values", static_cast<uint64_t>(a.count) * a.m.value_bytes);
  return a;
}

// delete(fd, keys, count, elemFlags, flags)
BatchArgs DeleteArgs(const Napi::CallbackInfo& info, bool slot = false) {
  Napi::Env env = info.Env();
  BatchArgs a = CommonArgs(info, Kind::kDelete, bpfattr::cmd::map_delete_batch, "map_delete_batch", 2, slot);
  a.keys = Sized(env, info[1], "keys", static_cast<uint64_t>(a.count) * a.m.key_size);
  return a;
}

struct Outcome {
  long ret = 0;
  int err = 0;
  uint32_t count = 0;  // elements the kernel processed, also on failure
};

Outcome Syscall(unsigned cmd, int fd, const void* in, void* out, void* keys, void* values, uint32_t count,
                uint64_t elem_flags, uint64_t flags) {
  bpfattr::batch a{};
  a.map_fd = fd;
  a.in_batch = PtrToU64(in);
  a.out_batch = PtrToU64(out);
  a.keys = PtrToU64(keys);
  a.values = PtrToU64(values);
  a.count = count;
  a.elem_flags = elem_flags;
  a.flags = flags;
  Outcome o;
  o.ret = SysBpf(cmd, &a, BPFATTR_OFFSETOFEND(bpfattr::batch, flags));
  o.err = o.ret == 0 ? 0 : errno;
  o.count = a.count;
  return o;
}

// Lookups: { count, done } (done: the kernel reported ENOENT, the end of the
// map, which is not an error). Updates and deletes: the number processed.
Napi::Value Result(Napi::Env env, Kind kind, const char* name, const Outcome& o, uint32_t requested) {
  if (kind == Kind::kLookup) {
    if (o.ret != 0 && o.err != ENOENT) ThrowBpfError(env, name, o.err);
    Napi::Object r = Napi::Object::New(env);
    r.Set("count", o.count);
    r.Set("done", o.ret != 0);
    return r;
  }
  if (o.ret != 0 && !(kind == Kind::kDelete && o.err == ENOENT)) {
    const std::string detail = std::to_string(o.count) + " of " + std::to_string(requested) + " elements were " +
                               (kind == Kind::kUpdate ? "updated" : "deleted");
    ThrowBpfError(env, name, o.err, std::string(), detail.c_str());
  }
  return Napi::Number::New(env, o.count);
}

Napi::Value RunNow(const BatchArgs& a, Napi::Env env) {
  const Outcome o = Syscall(a.cmd, a.fd, a.has_in ? a.in.data : nullptr, a.out.data, a.keys.data, a.values.data,
                            a.count, a.elem_flags, a.flags);
  return Result(env, a.kind, a.name, o, a.count);
}

// ---- the Promise form ----

std::vector<uint8_t> Copy(const Bytes& b, uint64_t n) { return std::vector<uint8_t>(b.data, b.data + n); }

// What an in-flight batch owns: the dup, native buffers the kernel reads and
// writes, and references keeping JavaScript's output buffers alive until the
// results are copied into them.
struct InFlight {
  BatchArgs args;
  std::vector<uint8_t> in, out, keys, values;
  Napi::ObjectReference out_ref, keys_ref, values_ref;
  Outcome outcome;
};

// Copies `n` bytes of a result into the JavaScript buffer `ref`, which may
// have been detached or shrunk since the call began.
void CopyBack(Napi::Env env, const Napi::ObjectReference& ref, const char* name, const std::vector<uint8_t>& from,
              uint64_t n) {
  Bytes to = BytesArg(ref.Value(), name);
  if (to.length < n) {
    ThrowType(env, std::string(name) + " was detached or shrunk while the batch ran; " + std::to_string(n) +
                       " bytes of results had nowhere to go");
  }
  memcpy(to.data, from.data(), n);
}

Napi::Value RunLater(const Napi::CallbackInfo& info, BatchArgs args) {
  auto f = std::make_shared<InFlight>();
  InFlight& j = *f;
  const MapMeta m = args.m;
  const uint64_t key_bytes = static_cast<uint64_t>(args.count) * m.key_size;
  const uint64_t value_bytes = static_cast<uint64_t>(args.count) * m.value_bytes;
  if (args.kind == Kind::kLookup) {
    if (args.has_in) j.in = Copy(args.in, BatchCursorBytes(m));
    j.out.assign(BatchCursorBytes(m), 0);
    j.keys.assign(key_bytes, 0);
    j.values.assign(value_bytes, 0);
    j.out_ref = Napi::Persistent(info[2].As<Napi::Object>());
    j.keys_ref = Napi::Persistent(info[3].As<Napi::Object>());
    j.values_ref = Napi::Persistent(info[4].As<Napi::Object>());
  } else {
    j.keys = Copy(args.keys, key_bytes);
    if (args.kind == Kind::kUpdate) j.values = Copy(args.values, value_bytes);
  }
  j.args = std::move(args);
  auto work = [f] {
    InFlight& j = *f;
    const BatchArgs& a = j.args;
    j.outcome = Syscall(a.cmd, a.fd, a.has_in ? j.in.data() : nullptr, j.out.empty() ? nullptr : j.out.data(),
                        j.keys.empty() ? nullptr : j.keys.data(), j.values.empty() ? nullptr : j.values.data(), a.count,
                        a.elem_flags, a.flags);
  };
  auto settle = [f](napi_env raw) -> Settlement {
    Napi::Env env(raw);
    InFlight& j = *f;
    const BatchArgs& a = j.args;
    j.args.held.Reset();  // done with the map
    try {
      if (a.kind == Kind::kLookup && (j.outcome.ret == 0 || j.outcome.err == ENOENT || j.outcome.count > 0)) {
        const uint64_t n = j.outcome.count;
        CopyBack(env, j.out_ref, "outBatch", j.out, j.out.size());
        CopyBack(env, j.keys_ref, "keys", j.keys, n * a.m.key_size);
        CopyBack(env, j.values_ref, "values", j.values, n * a.m.value_bytes);
      }
      return Settlement{Result(env, a.kind, a.name, j.outcome, a.count), true};
    } catch (const Napi::Error& e) {
      return Settlement{e.Value(), false};  // the BpfError or TypeError, as the rejection
    }
  };
  return RunAsync(info.Env(), std::move(work), std::move(settle));
}

Napi::Value MapLookupBatch(const Napi::CallbackInfo& info) {
  return RunNow(LookupArgs(info, bpfattr::cmd::map_lookup_batch, "map_lookup_batch"), info.Env());
}
Napi::Value MapLookupAndDeleteBatch(const Napi::CallbackInfo& info) {
  return RunNow(LookupArgs(info, bpfattr::cmd::map_lookup_and_delete_batch, "map_lookup_and_delete_batch"), info.Env());
}
Napi::Value MapUpdateBatch(const Napi::CallbackInfo& info) { return RunNow(UpdateArgs(info), info.Env()); }
Napi::Value MapDeleteBatch(const Napi::CallbackInfo& info) { return RunNow(DeleteArgs(info), info.Env()); }

// The same through a map slot (map_slots.cc): mapSlotLookupBatch(slot, ...)
// takes the arguments of mapLookupBatch(fd, ...), and so on.
Napi::Value MapSlotLookupBatch(const Napi::CallbackInfo& info) {
  return RunNow(LookupArgs(info, bpfattr::cmd::map_lookup_batch, "map_lookup_batch", true), info.Env());
}
Napi::Value MapSlotLookupAndDeleteBatch(const Napi::CallbackInfo& info) {
  return RunNow(LookupArgs(info, bpfattr::cmd::map_lookup_and_delete_batch, "map_lookup_and_delete_batch", true),
                info.Env());
}
Napi::Value MapSlotUpdateBatch(const Napi::CallbackInfo& info) { return RunNow(UpdateArgs(info, true), info.Env()); }
Napi::Value MapSlotDeleteBatch(const Napi::CallbackInfo& info) { return RunNow(DeleteArgs(info, true), info.Env()); }

Napi::Value MapLookupBatchAsync(const Napi::CallbackInfo& info) {
  return RunLater(info, LookupArgs(info, bpfattr::cmd::map_lookup_batch, "map_lookup_batch"));
}
Napi::Value MapLookupAndDeleteBatchAsync(const Napi::CallbackInfo& info) {
  return RunLater(info, LookupArgs(info, bpfattr::cmd::map_lookup_and_delete_batch, "map_lookup_and_delete_batch"));
}
Napi::Value MapUpdateBatchAsync(const Napi::CallbackInfo& info) { return RunLater(info, UpdateArgs(info)); }
Napi::Value MapDeleteBatchAsync(const Napi::CallbackInfo& info) { return RunLater(info, DeleteArgs(info)); }

}  // namespace

void InitMapBatches(Napi::Env env, Napi::Object exports) {
  exports.Set("mapLookupBatch", Napi::Function::New(env, MapLookupBatch, "mapLookupBatch"));
  exports.Set("mapLookupAndDeleteBatch", Napi::Function::New(env, MapLookupAndDeleteBatch, "mapLookupAndDeleteBatch"));
  exports.Set("mapUpdateBatch", Napi::Function::New(env, MapUpdateBatch, "mapUpdateBatch"));
  exports.Set("mapDeleteBatch", Napi::Function::New(env, MapDeleteBatch, "mapDeleteBatch"));
  exports.Set("mapSlotLookupBatch", Napi::Function::New(env, MapSlotLookupBatch, "mapSlotLookupBatch"));
  exports.Set("mapSlotLookupAndDeleteBatch",
              Napi::Function::New(env, MapSlotLookupAndDeleteBatch, "mapSlotLookupAndDeleteBatch"));
  exports.Set("mapSlotUpdateBatch", Napi::Function::New(env, MapSlotUpdateBatch, "mapSlotUpdateBatch"));
  exports.Set("mapSlotDeleteBatch", Napi::Function::New(env, MapSlotDeleteBatch, "mapSlotDeleteBatch"));
  exports.Set("mapLookupBatchAsync", Napi::Function::New(env, MapLookupBatchAsync, "mapLookupBatchAsync"));
  exports.Set("mapLookupAndDeleteBatchAsync",
              Napi::Function::New(env, MapLookupAndDeleteBatchAsync, "mapLookupAndDeleteBatchAsync"));
  exports.Set("mapUpdateBatchAsync", Napi::Function::New(env, MapUpdateBatchAsync, "mapUpdateBatchAsync"));
  exports.Set("mapDeleteBatchAsync", Napi::Function::New(env, MapDeleteBatchAsync, "mapDeleteBatchAsync"));
}

}  // namespace bpfkit
