// Attaching programs: LINK_CREATE with every attach family's extra fields,
// LINK_UPDATE and LINK_DETACH, the older PROG_ATTACH / PROG_DETACH /
// PROG_QUERY, RAW_TRACEPOINT_OPEN, ITER_CREATE, and OBJ_GET_INFO_BY_FD for the
// link infos that point at user buffers (names, paths, address lists).
#include <memory>
#include <string>
#include <vector>

#include "common.h"

namespace bpfkit {
namespace {

// The kernel caps kprobe.multi and uprobe.multi at 1 << 20 entries
// (MAX_KPROBE_MULTI_CNT, MAX_UPROBE_MULTI_CNT); refusing more here keeps a
// hostile count from allocating anything.
constexpr size_t kMaxMultiCount = 1u << 20;

Napi::Value FdResult(Napi::Env env, long ret, const char* command) {
  int fd = SafeFd(ret);
  if (fd < 0) ThrowBpfError(env, command, errno);
  ForgetFd(env, fd);
  return Napi::Number::New(env, fd);
}

// A BigUint64Array option: its elements (copied, so a getter cannot change
// them between the count and the call). Empty when absent.
std::vector<uint64_t> U64Array(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (IsAbsent(v)) return {};
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_biguint64_array) {
    ThrowType(o.Env(), std::string(key) + " must be a BigUint64Array");
  }
  auto a = v.As<Napi::BigUint64Array>();
  if (a.ElementLength() > kMaxMultiCount) ThrowRange(o.Env(), std::string(key) + " holds more than 2^20 entries");
  return std::vector<uint64_t>(a.Data(), a.Data() + a.ElementLength());
}

// A string array option (kprobe.multi symbols).
std::vector<std::string> StringArray(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (IsAbsent(v)) return {};
  if (!v.IsArray()) ThrowType(o.Env(), std::string(key) + " must be an array of strings");
  auto a = v.As<Napi::Array>();
  if (a.Length() > kMaxMultiCount) ThrowRange(o.Env(), std::string(key) + " holds more than 2^20 entries");
  std::vector<std::string> out;
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value s = a.Get(i);
    if (!s.IsString()) ThrowType(o.Env(), std::string(key) + "[" + std::to_string(i) + "] must be a string");
    std::string str = s.As<Napi::String>().Utf8Value();
    if (str.empty() || str.size() > 511 || str.find('\0') != std::string::npos) {
      ThrowType(o.Env(), std::string(key) + "[" + std::to_string(i) + "] must be a symbol name of 1..511 bytes without NUL");
    }
    out.push_back(std::move(str));
  }
  return out;
}

Napi::Object OptObject(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (IsAbsent(v)) return Napi::Object();
  if (!v.IsObject()) ThrowType(o.Env(), std::string(key) + " must be an object");
  return v.As<Napi::Object>();
}

// The storage a LINK_CREATE's pointers refer to, alive until the call returns.
struct LinkCreateArgs {
  bpfattr::link_create attr{};
  size_t size = 0;
  std::vector<std::string> syms;
  std::vector<const char*> sym_ptrs;
  std::vector<uint64_t> addrs, offsets, ref_ctr_offsets, cookies;
  std::string path;
  std::vector<uint8_t> iter_info;
};

#define LINK_END(field) BPFATTR_OFFSETOFEND(bpfattr::link_create, field)

// Exactly one of the attach-type-specific parts may be given; it decides how
// much of the attribute the kernel reads.
void ParseLinkExtra(const Napi::Object& o, LinkCreateArgs& a) {
  Napi::Env env = o.Env();
  const char* parts[] = {"targetBtfId", "cookie", "iterInfo", "kprobeMulti", "uprobeMulti", "netfilter", "relative", "tracingCookie"};
  const char* given = nullptr;
  for (const char* p : parts) {
    if (IsAbsent(o.Get(p))) continue;
    // targetBtfId with tracingCookie is one part (the tracing variant).
    if (given != nullptr && !(std::string(given) == "targetBtfId" && std::string(p) == "tracingCookie")) {
      ThrowType(env, std::string(given) + " and " + p + " are exclusive");
    }
    if (given == nullptr) given = p;
  }
  a.size = LINK_END(flags);
  if (given == nullptr) return;
  std::string g = given;
  if (g == "targetBtfId" || g == "tracingCookie") {
    a.attr.tracing.target_btf_id = OptU32(o, "targetBtfId");
    uint64_t cookie = OptU64(o, "tracingCookie");
    a.attr.tracing.cookie = cookie;
    a.size = cookie != 0 ? LINK_END(tracing.cookie) : LINK_END(target_btf_id);
  } else if (g == "cookie") {
    a.attr.perf_event.bpf_cookie = OptU64(o, "cookie");
    a.size = LINK_END(perf_event.bpf_cookie);
  } else if (g == "iterInfo") {
    Bytes b = BytesArg(o.Get("iterInfo"), "iterInfo");
    if (b.length == 0 || b.length > 64) ThrowRange(env, "iterInfo must hold 1..64 bytes (union bpf_iter_link_info)");
    a.iter_info.assign(b.data, b.data + b.length);
    a.attr.iter_info = PtrToU64(a.iter_info.data());
    a.attr.iter_info_len = static_cast<uint32_t>(a.iter_info.size());
    a.size = LINK_END(iter_info_len);
  } else if (g == "kprobeMulti") {
    Napi::Object k = OptObject(o, "kprobeMulti");
    a.syms = StringArray(k, "syms");
    a.addrs = U64Array(k, "addrs");
    a.cookies = U64Array(k, "cookies");
    if (a.syms.empty() == a.addrs.empty()) ThrowType(env, "kprobeMulti needs exactly one of syms and addrs, not empty");
    size_t n = a.syms.empty() ? a.addrs.size() : a.syms.size();
    if (!a.cookies.empty() && a.cookies.size() != n) ThrowRange(env, "kprobeMulti.cookies must have one entry per probe");
    for (const auto& s : a.syms) a.sym_ptrs.push_back(s.c_str());
    a.attr.kprobe_multi.flags = OptU32(k, "flags");
    a.attr.kprobe_multi.cnt = static_cast<uint32_t>(n);
    a.attr.kprobe_multi.syms = a.sym_ptrs.empty() ? 0 : PtrToU64(a.sym_ptrs.data());
    a.attr.kprobe_multi.addrs = a.addrs.empty() ? 0 : PtrToU64(a.addrs.data());
    a.attr.kprobe_multi.cookies = a.cookies.empty() ? 0 : PtrToU64(a.cookies.data());
    a.size = LINK_END(kprobe_multi.cookies);
  } else if (g == "uprobeMulti") {
    Napi::Object u = OptObject(o, "uprobeMulti");
    a.path = OptString(u, "path", 4095);
    if (a.path.empty()) ThrowType(env, "uprobeMulti.path must be a non-empty string");
    a.offsets = U64Array(u, "offsets");
    a.ref_ctr_offsets = U64Array(u, "refCtrOffsets");
    a.cookies = U64Array(u, "cookies");
    if (a.offsets.empty()) ThrowType(env, "uprobeMulti.offsets must not be empty");
    if (!a.ref_ctr_offsets.empty() && a.ref_ctr_offsets.size() != a.offsets.size()) {
      ThrowRange(env, "uprobeMulti.refCtrOffsets must have one entry per offset");
    }
    if (!a.cookies.empty() && a.cookies.size() != a.offsets.size()) ThrowRange(env, "uprobeMulti.cookies must have one entry per offset");
    a.attr.uprobe_multi.path = PtrToU64(a.path.c_str());
    a.attr.uprobe_multi.offsets = PtrToU64(a.offsets.data());
    a.attr.uprobe_multi.ref_ctr_offsets = a.ref_ctr_offsets.empty() ? 0 : PtrToU64(a.ref_ctr_offsets.data());
    a.attr.uprobe_multi.cookies = a.cookies.empty() ? 0 : PtrToU64(a.cookies.data());
    a.attr.uprobe_multi.cnt = static_cast<uint32_t>(a.offsets.size());
    a.attr.uprobe_multi.flags = OptU32(u, "flags");
    a.attr.uprobe_multi.pid = OptU32(u, "pid");
    a.size = LINK_END(uprobe_multi.pid);
  } else if (g == "netfilter") {
    Napi::Object n = OptObject(o, "netfilter");
    a.attr.netfilter.pf = OptU32(n, "pf");
    a.attr.netfilter.hooknum = OptU32(n, "hooknum");
    Napi::Value prio = n.Get("priority");
    if (!prio.IsNumber()) ThrowType(env, "netfilter.priority must be a number");
    double p = prio.As<Napi::Number>().DoubleValue();
    if (p != static_cast<int32_t>(p)) ThrowRange(env, "netfilter.priority must be a 32-bit integer");
    a.attr.netfilter.priority = static_cast<int32_t>(p);
    a.attr.netfilter.flags = OptU32(n, "flags");
    a.size = LINK_END(netfilter.flags);
  } else if (g == "relative") {
    // tcx, netkit and (6.15+) cgroup links share this layout.
    Napi::Object r = OptObject(o, "relative");
    int fd = OptFd(r, "fd");
    uint32_t id = OptU32(r, "id");
    if (fd >= 0 && id != 0) ThrowType(env, "relative.fd and relative.id are exclusive");
    a.attr.tcx.relative_fd = fd >= 0 ? static_cast<uint32_t>(fd) : id;
    a.attr.tcx.expected_revision = OptU64(r, "expectedRevision");
    a.size = LINK_END(tcx.expected_revision);
  }
}

// linkCreate({ progFd | mapFd, targetFd | targetIfindex, attachType, flags, <one extra part> }) -> fd
//   targetBtfId [+ tracingCookie]: tracing, freplace, lsm
//   cookie: perf_event links
//   iterInfo: union bpf_iter_link_info bytes
//   kprobeMulti: { syms | addrs, cookies?, flags }
//   uprobeMulti: { path, offsets, refCtrOffsets?, cookies?, pid, flags }
//   netfilter: { pf, hooknum, priority, flags }
//   relative: { fd | id, expectedRevision } (tcx, netkit, cgroup)
Napi::Value LinkCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) ThrowType(env, "link_create: attributes must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  auto a = std::make_unique<LinkCreateArgs>();
  int prog = OptFd(o, "progFd");
  int map = OptFd(o, "mapFd");
  if ((prog >= 0) == (map >= 0)) ThrowType(env, "link_create needs exactly one of progFd and mapFd");
  a->attr.prog_fd = static_cast<uint32_t>(prog >= 0 ? prog : map);
  int target = OptFd(o, "targetFd");
  uint32_t ifindex = OptU32(o, "targetIfindex");
  if (target >= 0 && ifindex != 0) ThrowType(env, "targetFd and targetIfindex are exclusive");
  a->attr.target_fd = target >= 0 ? static_cast<uint32_t>(target) : ifindex;
  a->attr.attach_type = OptU32(o, "attachType");
  a->attr.flags = OptU32(o, "flags");
  ParseLinkExtra(o, *a);
  return FdResult(env, SysBpf(bpfattr::cmd::link_create, &a->attr, a->size), "link_create");
}

Napi::Value LinkDetach(const Napi::CallbackInfo& info) {
  bpfattr::link_detach a{};
  a.link_fd = FdArg(info[0], "fd");
  if (SysBpf(bpfattr::cmd::link_detach, &a, BPFATTR_OFFSETOFEND(bpfattr::link_detach, link_fd)) != 0) {
    ThrowBpfError(info.Env(), "link_detach", errno);
  }
  return info.Env().Undefined();
}

// BPF_F_REPLACE (include/uapi/linux/bpf.h): the update or attach happens only
// if the program now there is the given old one.
constexpr uint32_t kFlagReplace = 1u << 2;

// linkUpdate(linkFd, newProgFd, oldProgFd?): swaps the program (or struct_ops
// map) of a link; with oldProgFd, only if that one is still attached.
Napi::Value LinkUpdate(const Napi::CallbackInfo& info) {
  bpfattr::link_update a{};
  a.link_fd = FdArg(info[0], "linkFd");
  a.new_prog_fd = FdArg(info[1], "newProgFd");
  int old = OptFdArg(info[2], "oldProgFd");
  if (old >= 0) {
    a.old_prog_fd = static_cast<uint32_t>(old);
    a.flags = kFlagReplace;
  }
  if (SysBpf(bpfattr::cmd::link_update, &a, BPFATTR_OFFSETOFEND(bpfattr::link_update, old_prog_fd)) != 0) {
    ThrowBpfError(info.Env(), "link_update", errno);
  }
  return info.Env().Undefined();
}

// The target of PROG_ATTACH, PROG_DETACH and PROG_QUERY: a fd or an ifindex.
uint32_t TargetOf(const Napi::Object& o) {
  int target = OptFd(o, "targetFd");
  uint32_t ifindex = OptU32(o, "targetIfindex");
  if (target >= 0 && ifindex != 0) ThrowType(o.Env(), "targetFd and targetIfindex are exclusive");
  return target >= 0 ? static_cast<uint32_t>(target) : ifindex;
}

void SetRelative(const Napi::Object& o, bpfattr::prog_attach& a) {
  int fd = OptFd(o, "relativeFd");
  uint32_t id = OptU32(o, "relativeId");
  if (fd >= 0 && id != 0) ThrowType(o.Env(), "relativeFd and relativeId are exclusive");
  a.relative_fd = fd >= 0 ? static_cast<uint32_t>(fd) : id;
  a.expected_revision = OptU64(o, "expectedRevision");
}

// progAttach({ targetFd | targetIfindex, progFd, attachType, flags, replaceProgFd, relativeFd | relativeId, expectedRevision })
Napi::Value ProgAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) ThrowType(env, "prog_attach: attributes must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  bpfattr::prog_attach a{};
  a.target_fd = TargetOf(o);
  a.attach_bpf_fd = FdArg(o.Get("progFd"), "progFd");
  a.attach_type = OptU32(o, "attachType");
  a.attach_flags = OptU32(o, "flags");
  int replace = OptFd(o, "replaceProgFd");
  if (replace >= 0) a.replace_bpf_fd = static_cast<uint32_t>(replace);
  SetRelative(o, a);
  if (SysBpf(bpfattr::cmd::prog_attach, &a, sizeof(a)) != 0) ThrowBpfError(env, "prog_attach", errno);
  return env.Undefined();
}

// progDetach({ targetFd | targetIfindex, progFd?, attachType, flags, relativeFd | relativeId, expectedRevision })
Napi::Value ProgDetach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) ThrowType(env, "prog_detach: attributes must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  bpfattr::prog_attach a{};
  a.target_fd = TargetOf(o);
  int prog = OptFd(o, "progFd");
  if (prog >= 0) a.attach_bpf_fd = static_cast<uint32_t>(prog);
  a.attach_type = OptU32(o, "attachType");
  a.attach_flags = OptU32(o, "flags");
  SetRelative(o, a);
  if (SysBpf(bpfattr::cmd::prog_detach, &a, sizeof(a)) != 0) ThrowBpfError(env, "prog_detach", errno);
  return env.Undefined();
}

// progQuery({ targetFd | targetIfindex, attachType, queryFlags, withLinks }) ->
//   { progIds: number[], linkIds: number[], attachFlags, revision }
// Asks again with room for every program when the first answer is ENOSPC.
// withLinks asks for link ids and the revision too (Linux 6.6+, tcx and
// netkit); older kernels refuse the attribute's non-zero tail with EINVAL.
Napi::Value ProgQuery(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) ThrowType(env, "prog_query: attributes must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  uint32_t target = TargetOf(o);
  uint32_t type = OptU32(o, "attachType");
  uint32_t qflags = OptU32(o, "queryFlags");
  Napi::Value with = o.Get("withLinks");
  bool with_links = !IsAbsent(with) && with.ToBoolean().Value();
  std::vector<uint32_t> progs(64), links(64);
  bpfattr::query a{};
  for (int attempt = 0; attempt < 4; attempt++) {
    a = bpfattr::query{};
    a.target_fd = target;
    a.attach_type = type;
    a.query_flags = qflags;
    a.prog_ids = PtrToU64(progs.data());
    if (with_links) a.link_ids = PtrToU64(links.data());
    a.prog_cnt = static_cast<uint32_t>(progs.size());
    size_t size = with_links ? sizeof(a) : BPFATTR_OFFSETOFEND(bpfattr::query, prog_cnt);
    if (SysBpf(bpfattr::cmd::prog_query, &a, size) == 0) break;
    if (errno != ENOSPC || a.prog_cnt <= progs.size() || a.prog_cnt > (1u << 16)) ThrowBpfError(env, "prog_query", errno);
    progs.assign(a.prog_cnt, 0);
    links.assign(a.prog_cnt, 0);
  }
  uint32_t n = std::min<uint32_t>(a.prog_cnt, static_cast<uint32_t>(progs.size()));
  Napi::Array progIds = Napi::Array::New(env, n);
  Napi::Array linkIds = Napi::Array::New(env, n);
  for (uint32_t i = 0; i < n; i++) {
    progIds.Set(i, Napi::Number::New(env, progs[i]));
    linkIds.Set(i, Napi::Number::New(env, links[i]));
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("progIds", progIds);
  out.Set("linkIds", linkIds);
  out.Set("attachFlags", Napi::Number::New(env, a.attach_flags));
  out.Set("revision", Napi::BigInt::New(env, static_cast<uint64_t>(a.revision)));
  return out;
}

// rawTracepointOpen(progFd, name?, cookie?) -> link fd. Without a name the
// program's own attach target is used (tp_btf, fentry, lsm, ...).
Napi::Value RawTracepointOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpfattr::raw_tracepoint a{};
  a.prog_fd = FdArg(info[0], "progFd");
  std::string name;
  if (!IsAbsent(info[1])) {
    if (!info[1].IsString()) ThrowType(env, "tracepoint name must be a string");
    name = info[1].As<Napi::String>().Utf8Value();
    if (name.empty() || name.size() > 255 || name.find('\0') != std::string::npos) {
      ThrowType(env, "tracepoint name must be 1..255 bytes without NUL");
    }
    a.name = PtrToU64(name.c_str());
  }
  size_t size = BPFATTR_OFFSETOFEND(bpfattr::raw_tracepoint, prog_fd);
  if (!IsAbsent(info[2])) {
    a.cookie = U64Arg(info[2], "cookie");
    if (a.cookie != 0) size = BPFATTR_OFFSETOFEND(bpfattr::raw_tracepoint, cookie);
  }
  return FdResult(env, SysBpf(bpfattr::cmd::raw_tracepoint_open, &a, size), "raw_tracepoint_open");
}

// iterCreate(linkFd) -> fd that reads the iterator's output from the start.
Napi::Value IterCreate(const Napi::CallbackInfo& info) {
  bpfattr::iter_create a{};
  a.link_fd = FdArg(info[0], "linkFd");
  return FdResult(info.Env(), SysBpf(bpfattr::cmd::iter_create, &a, BPFATTR_OFFSETOFEND(bpfattr::iter_create, flags)),
                  "iter_create");
}

// objGetInfoWithBuffers(fd, out, pointers: [offset, buffer][]) -> info length.
// Before the call each u64 at `offset` in `out` is set to the address of its
// buffer, for the infos whose strings and arrays the kernel copies out to user
// memory (link names, paths, address lists). The caller writes the matching
// length fields into `out`; a buffer shorter than its length field says is
// refused here, so the kernel never writes past one.
Napi::Value ObjGetInfoWithBuffers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info[0], "fd");
  Bytes out = BytesArg(info[1], "info");
  if (out.length < 8 || out.length > 4096) ThrowRange(env, "info buffer must hold 8..4096 bytes");
  if (!info[2].IsArray()) ThrowType(env, "pointers must be an array of [offset, buffer, lengthOffset, elementSize]");
  auto list = info[2].As<Napi::Array>();
  if (list.Length() > 8) ThrowRange(env, "at most 8 pointers");
  struct Ptr { uint32_t at; Bytes buf; uint32_t len_at; uint32_t elem; };
  std::vector<Ptr> ptrs;
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value e = list.Get(i);
    if (!e.IsArray() || e.As<Napi::Array>().Length() != 4) ThrowType(env, "each pointer must be [offset, buffer, lengthOffset, elementSize]");
    auto t = e.As<Napi::Array>();
    Ptr p{U32Arg(t.Get(0u), "offset"), BytesArg(t.Get(1u), "buffer"), U32Arg(t.Get(2u), "lengthOffset"), U32Arg(t.Get(3u), "elementSize")};
    if (static_cast<uint64_t>(p.at) + 8 > out.length || static_cast<uint64_t>(p.len_at) + 4 > out.length || p.at % 8 != 0 || p.len_at % 4 != 0) {
      ThrowRange(env, "pointer or length offset outside the info buffer");
    }
    if (p.elem == 0 || p.elem > 8) ThrowRange(env, "elementSize must be 1..8");
    ptrs.push_back(p);
  }
  memset(out.data, 0, out.length);
  for (const Ptr& p : ptrs) {
    uint32_t count = static_cast<uint32_t>(p.buf.length / p.elem);
    uint64_t addr = count == 0 ? 0 : PtrToU64(p.buf.data);
    memcpy(out.data + p.at, &addr, 8);
    memcpy(out.data + p.len_at, &count, 4);
  }
  bpfattr::info a{};
  a.bpf_fd = static_cast<uint32_t>(fd);
  a.info_len = static_cast<uint32_t>(out.length);
  a.info = PtrToU64(out.data);
  if (SysBpf(bpfattr::cmd::obj_get_info_by_fd, &a, sizeof(a)) != 0) ThrowBpfError(env, "obj_get_info_by_fd", errno);
  return Napi::Number::New(env, a.info_len);
}

}  // namespace

void InitLinks(Napi::Env env, Napi::Object exports) {
  exports.Set("linkCreate", Napi::Function::New(env, LinkCreate, "linkCreate"));
  exports.Set("linkDetach", Napi::Function::New(env, LinkDetach, "linkDetach"));
  exports.Set("linkUpdate", Napi::Function::New(env, LinkUpdate, "linkUpdate"));
  exports.Set("progAttach", Napi::Function::New(env, ProgAttach, "progAttach"));
  exports.Set("progDetach", Napi::Function::New(env, ProgDetach, "progDetach"));
  exports.Set("progQuery", Napi::Function::New(env, ProgQuery, "progQuery"));
  exports.Set("rawTracepointOpen", Napi::Function::New(env, RawTracepointOpen, "rawTracepointOpen"));
  exports.Set("iterCreate", Napi::Function::New(env, IterCreate, "iterCreate"));
  exports.Set("objGetInfoWithBuffers", Napi::Function::New(env, ObjGetInfoWithBuffers, "objGetInfoWithBuffers"));
}

}  // namespace bpfkit
