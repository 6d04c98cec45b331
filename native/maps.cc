// Map commands: create, element operations, freeze (batches: map_batch.cc). Every buffer is
// checked against the map's key and value sizes before the kernel sees it.
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "common.h"
#include "promise_worker.h"  // HeldFd, HoldFd

namespace bpfkit {
namespace {

bool IsPerCpu(uint32_t type) {
  return type == bpfattr::map_type::percpu_hash || type == bpfattr::map_type::percpu_array ||
         type == bpfattr::map_type::lru_percpu_hash || type == bpfattr::map_type::percpu_cgroup_storage;
}

MapMeta MakeMeta(uint32_t type, uint32_t key_size, uint32_t value_size, uint32_t max_entries, uint32_t flags) {
  MapMeta m{type, key_size, value_size, value_size, max_entries, flags};
  if (IsPerCpu(type)) m.value_bytes = ((value_size + 7) & ~7u) * NumPossibleCpus();
  return m;
}

// The kernel's sizes for the map at fd, asked each time: a cache by fd
// number would describe whatever the number meant before it was closed and
// reused. Callers pass the dup they work on (HoldFd), so the sizes and
// the call that relies on them see the same map.
MapMeta Meta(Napi::Env env, int fd, const char* command) {
  bpfattr::map_info mi{};
  bpfattr::info attr{};
  attr.bpf_fd = fd;
  attr.info_len = sizeof(mi);
  attr.info = PtrToU64(&mi);
  if (SysBpf(bpfattr::cmd::obj_get_info_by_fd, &attr, BPFATTR_OFFSETOFEND(bpfattr::info, info)) != 0) {
    int err = errno;
    // EINVAL here means the fd is no BPF object at all; the errno alone would
    // blame the map's flags or arguments.
    if (err == EINVAL) ThrowBpfErrorBecause(env, command, err, nullptr, "the fd is not a BPF map");
    ThrowBpfError(env, command, err);
  }
  // OBJ_GET_INFO_BY_FD answers for programs, links and BTF too, filling the
  // buffer with their own info, whose bytes would read as absurd key and
  // value sizes. The fd's anon inode names its kind; without /proc the
  // kernel's EINVAL on the map call itself still names it.
  char path[32], kind[32];
  snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  ssize_t n = readlink(path, kind, sizeof(kind) - 1);
  if (n > 0) {
    kind[n] = '\0';
    if (strncmp(kind, "anon_inode:", 11) == 0 && strcmp(kind, "anon_inode:bpf-map") != 0) {
      std::string what = std::string("the fd is not a BPF map (it is ") + (kind + 11) + ")";
      ThrowBpfErrorBecause(env, command, EINVAL, nullptr, what.c_str());
    }
  }
  return MakeMeta(mi.type, mi.key_size, mi.value_size, mi.max_entries, mi.map_flags);
}

// ---- create ----

Napi::Value MapCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) ThrowType(env, "map_create: attributes must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  bpfattr::map_create a{};
  a.map_type = OptU32(o, "mapType");
  a.key_size = OptU32(o, "keySize");
  a.value_size = OptU32(o, "valueSize");
  a.max_entries = OptU32(o, "maxEntries");
  a.map_flags = OptU32(o, "mapFlags");
  int inner = OptFd(o, "innerMapFd");
  a.inner_map_fd = inner < 0 ? 0 : inner;
  a.numa_node = OptU32(o, "numaNode");
  std::string name = OptString(o, "name", sizeof(a.map_name) - 1);
  memcpy(a.map_name, name.data(), name.size());
  a.map_ifindex = OptU32(o, "mapIfindex");
  int btf = OptFd(o, "btfFd");
  a.btf_fd = btf < 0 ? 0 : btf;
  a.btf_key_type_id = OptU32(o, "btfKeyTypeId");
  a.btf_value_type_id = OptU32(o, "btfValueTypeId");
  a.btf_vmlinux_value_type_id = OptU32(o, "btfVmlinuxValueTypeId");
  a.map_extra = OptU64(o, "mapExtra");
  size_t size = BPFATTR_OFFSETOFEND(bpfattr::map_create, map_extra);
  int token = OptFd(o, "tokenFd");
  if (token >= 0) {
    a.map_flags |= bpfattr::flag::TOKEN_FD;
    a.map_token_fd = token;
    size = BPFATTR_OFFSETOFEND(bpfattr::map_create, map_token_fd);
  } else if (a.map_extra == 0) {
    size = BPFATTR_OFFSETOFEND(bpfattr::map_create, btf_vmlinux_value_type_id);
  }
  int fd = SafeFd(SysBpf(bpfattr::cmd::map_create, &a, size));
  if (fd < 0) ThrowBpfError(env, "map_create", errno);
  ForgetFd(env, fd);
  return Napi::Number::New(env, fd);
}

// ---- single elements ----

// Key argument: the map's key size, or absent for key-less maps (queue, stack)
// and for "first key" in get_next_key.
const void* KeyPtr(Napi::Env env, const Napi::Value& v, const MapMeta& m, bool optional) {
  if (IsAbsent(v)) {
    if (optional || m.key_size == 0) return nullptr;
    ThrowType(env, "key is required for this map");
  }
  Bytes b = BytesArg(v, "key");
  RequireLength(env, b, m.key_size, "key");
  return b.data;
}

void* ValuePtr(Napi::Env env, const Napi::Value& v, const MapMeta& m) {
  Bytes b = BytesArg(v, "value");
  RequireLength(env, b, m.value_bytes, "value");
  return b.data;
}

long ElemCall(unsigned cmd, int fd, const void* key, const void* value, uint64_t flags) {
  bpfattr::map_elem a{};
  a.map_fd = fd;
  a.key = PtrToU64(key);
  a.value = PtrToU64(value);
  a.flags = flags;
  return SysBpf(cmd, &a, BPFATTR_OFFSETOFEND(bpfattr::map_elem, flags));
}

// mapLookupElem(fd, key, valueOut, flags) -> boolean (false: no such key)
Napi::Value MapLookupElem(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  HeldFd owned = HoldFd(env, FdArg(info[0], "fd"), "map_lookup_elem", "fd");
  const int fd = owned.get();
  const MapMeta m = Meta(env, fd, "map_lookup_elem");
  const void* key = KeyPtr(env, info[1], m, false);
  void* value = ValuePtr(env, info[2], m);
  uint64_t flags = IsAbsent(info[3]) ? 0 : U64Arg(info[3], "flags");
  if (ElemCall(bpfattr::cmd::map_lookup_elem, fd, key, value, flags) == 0) return Napi::Boolean::New(env, true);
  if (errno == ENOENT) return Napi::Boolean::New(env, false);
  ThrowBpfError(env, "map_lookup_elem", errno);
}

// mapUpdateElem(fd, key, value, flags)
Napi::Value MapUpdateElem(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  HeldFd owned = HoldFd(env, FdArg(info[0], "fd"), "map_update_elem", "fd");
  const int fd = owned.get();
  const MapMeta m = Meta(env, fd, "map_update_elem");
  const void* key = KeyPtr(env, info[1], m, false);
  void* value = ValuePtr(env, info[2], m);
  uint64_t flags = IsAbsent(info[3]) ? 0 : U64Arg(info[3], "flags");
  if (ElemCall(bpfattr::cmd::map_update_elem, fd, key, value, flags) != 0) ThrowBpfError(env, "map_update_elem", errno);
  return env.Undefined();
}

// mapDeleteElem(fd, key) -> boolean (false: no such key)
Napi::Value MapDeleteElem(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  HeldFd owned = HoldFd(env, FdArg(info[0], "fd"), "map_delete_elem", "fd");
  const int fd = owned.get();
  const MapMeta m = Meta(env, fd, "map_delete_elem");
  const void* key = KeyPtr(env, info[1], m, false);
  uint64_t flags = IsAbsent(info[2]) ? 0 : U64Arg(info[2], "flags");
  if (ElemCall(bpfattr::cmd::map_delete_elem, fd, key, nullptr, flags) == 0) return Napi::Boolean::New(env, true);
  if (errno == ENOENT) return Napi::Boolean::New(env, false);
  ThrowBpfError(env, "map_delete_elem", errno);
}

// mapGetNextKey(fd, key | null, nextKeyOut) -> boolean (false: no more keys)
Napi::Value MapGetNextKey(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  HeldFd owned = HoldFd(env, FdArg(info[0], "fd"), "map_get_next_key", "fd");
  const int fd = owned.get();
  const MapMeta m = Meta(env, fd, "map_get_next_key");
  const void* key = KeyPtr(env, info[1], m, true);
  Bytes next = BytesArg(info[2], "nextKey");
  RequireLength(env, next, m.key_size, "nextKey");
  bpfattr::map_elem a{};
  a.map_fd = fd;
  a.key = PtrToU64(key);
  a.next_key = PtrToU64(next.data);
  if (SysBpf(bpfattr::cmd::map_get_next_key, &a, BPFATTR_OFFSETOFEND(bpfattr::map_elem, next_key)) == 0) {
    return Napi::Boolean::New(env, true);
  }
  if (errno == ENOENT) return Napi::Boolean::New(env, false);
  ThrowBpfError(env, "map_get_next_key", errno);
}

// mapLookupAndDeleteElem(fd, key | null, valueOut, flags) -> boolean
Napi::Value MapLookupAndDeleteElem(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  HeldFd owned = HoldFd(env, FdArg(info[0], "fd"), "map_lookup_and_delete_elem", "fd");
  const int fd = owned.get();
  const MapMeta m = Meta(env, fd, "map_lookup_and_delete_elem");
  const void* key = KeyPtr(env, info[1], m, false);
  void* value = ValuePtr(env, info[2], m);
  uint64_t flags = IsAbsent(info[3]) ? 0 : U64Arg(info[3], "flags");
  if (ElemCall(bpfattr::cmd::map_lookup_and_delete_elem, fd, key, value, flags) == 0) return Napi::Boolean::New(env, true);
  if (errno == ENOENT) return Napi::Boolean::New(env, false);
  ThrowBpfError(env, "map_lookup_and_delete_elem", errno);
}

Napi::Value MapFreeze(const Napi::CallbackInfo& info) {
  bpfattr::map_elem a{};
  a.map_fd = FdArg(info[0], "fd");
  if (SysBpf(bpfattr::cmd::map_freeze, &a, BPFATTR_OFFSETOFEND(bpfattr::map_elem, map_fd)) != 0) {
    ThrowBpfError(info.Env(), "map_freeze", errno);
  }
  return info.Env().Undefined();
}

// mapMeta(fd) -> { type, keySize, valueSize, valueBytes, maxEntries }, as the
// native layer sizes buffers for this map.
Napi::Value MapMetaJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return MapMetaObject(env, Meta(env, FdArg(info[0], "fd"), "obj_get_info_by_fd"));  // one call: nothing to redirect
}

}  // namespace

MapMeta MapMetaOf(Napi::Env env, int fd, const char* command) { return Meta(env, fd, command); }

Napi::Object MapMetaObject(Napi::Env env, const MapMeta& m) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("type", m.type);
  o.Set("keySize", m.key_size);
  o.Set("valueSize", m.value_size);
  o.Set("valueBytes", m.value_bytes);
  o.Set("maxEntries", m.max_entries);
  return o;
}

void InitMaps(Napi::Env env, Napi::Object exports) {
  exports.Set("mapCreate", Napi::Function::New(env, MapCreate, "mapCreate"));
  exports.Set("mapLookupElem", Napi::Function::New(env, MapLookupElem, "mapLookupElem"));
  exports.Set("mapUpdateElem", Napi::Function::New(env, MapUpdateElem, "mapUpdateElem"));
  exports.Set("mapDeleteElem", Napi::Function::New(env, MapDeleteElem, "mapDeleteElem"));
  exports.Set("mapGetNextKey", Napi::Function::New(env, MapGetNextKey, "mapGetNextKey"));
  exports.Set("mapLookupAndDeleteElem", Napi::Function::New(env, MapLookupAndDeleteElem, "mapLookupAndDeleteElem"));
  exports.Set("mapFreeze", Napi::Function::New(env, MapFreeze, "mapFreeze"));
  exports.Set("mapMeta", Napi::Function::New(env, MapMetaJs, "mapMeta"));
}

}  // namespace bpfkit
