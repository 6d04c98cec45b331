// Commands on objects of every kind: pinning, info, ID walks, fd by ID, BTF
// load and tokens (links: links.cc).
#include <sys/stat.h>
#include <sys/statfs.h>

#include <memory>
#include <vector>

#include "common.h"
#include "log_load.h"

namespace bpfkit {
namespace {

Napi::Value FdResult(Napi::Env env, long ret, const char* command, const char* detail = nullptr) {
  int fd = SafeFd(ret);
  if (fd < 0) ThrowBpfError(env, command, errno, std::string(), detail);
  ForgetFd(env, fd);
  return Napi::Number::New(env, fd);
}

std::string PathArg(const Napi::Value& v) {
  if (!v.IsString()) ThrowType(v.Env(), "path must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.empty() || s.size() >= 4096 || s.find('\0') != std::string::npos) {
    ThrowType(v.Env(), "path must be a non-empty string under 4096 bytes without NUL");
  }
  return s;
}

// bpffs's f_type (include/uapi/linux/magic.h BPF_FS_MAGIC).
constexpr unsigned long kBpfFsMagic = 0xcafe4a11;

std::string DirOf(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// -1: cannot tell (errno set), 0: not a bpffs, 1: a bpffs.
int OnBpffs(const std::string& path) {
  struct statfs st {};
  if (statfs(path.c_str(), &st) != 0) return -1;
  return static_cast<unsigned long>(st.f_type) == kBpfFsMagic ? 1 : 0;
}

// The real cause of a failed pin or get, found by looking at the path: the
// kernel answers EPERM, EACCES or ENOENT for a path outside a bpffs or a
// missing directory, which the errno alone would blame on privileges or on
// a missing pin. Empty when the path looks right and the errno is the story.
std::string PinPathCause(const std::string& path, bool pinning) {
  const std::string dir = DirOf(path);
  const char* pins = "; pins live in a mounted bpffs (mount -t bpf bpf /sys/fs/bpf)";
  if (!pinning) {
    int here = OnBpffs(path);
    if (here == 0) return path + " is not in a bpffs, so it is not a pinned object" + pins;
    if (here == 1) {
      struct stat st {};
      if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return path + " is a directory, not a pinned object";
      return std::string();
    }
    if (errno != ENOENT) return std::string();
  }
  int parent = OnBpffs(dir);
  if (parent < 0) {
    if (errno == ENOENT) return "no such directory: " + dir;
    if (errno == ENOTDIR) return "a component of " + dir + " is not a directory";
    return std::string();
  }
  if (parent == 0) return dir + " is not in a bpffs" + pins;
  return std::string();
}

[[noreturn]] void ThrowPinError(Napi::Env env, const char* command, int err, const std::string& path, bool pinning) {
  std::string cause = PinPathCause(path, pinning);
  if (cause.empty()) ThrowBpfError(env, command, err, std::string(), path.c_str());
  ThrowBpfErrorBecause(env, command, err, path.c_str(), cause.c_str());
}

// objPin(fd, path)
Napi::Value ObjPin(const Napi::CallbackInfo& info) {
  bpfattr::obj a{};
  a.bpf_fd = FdArg(info[0], "fd");
  std::string path = PathArg(info[1]);
  a.pathname = PtrToU64(path.c_str());
  if (SysBpf(bpfattr::cmd::obj_pin, &a, BPFATTR_OFFSETOFEND(bpfattr::obj, file_flags)) != 0) {
    ThrowPinError(info.Env(), "obj_pin", errno, path, true);
  }
  return info.Env().Undefined();
}

// objGet(path, fileFlags) -> fd
Napi::Value ObjGet(const Napi::CallbackInfo& info) {
  bpfattr::obj a{};
  std::string path = PathArg(info[0]);
  a.pathname = PtrToU64(path.c_str());
  a.file_flags = IsAbsent(info[1]) ? 0 : U32Arg(info[1], "fileFlags");
  long ret = SysBpf(bpfattr::cmd::obj_get, &a, BPFATTR_OFFSETOFEND(bpfattr::obj, file_flags));
  if (ret < 0) ThrowPinError(info.Env(), "obj_get", errno, path, false);
  return FdResult(info.Env(), ret, "obj_get", path.c_str());
}

long InfoByFd(int fd, void* buf, uint32_t len, uint32_t* out_len) {
  bpfattr::info a{};
  a.bpf_fd = fd;
  a.info_len = len;
  a.info = PtrToU64(buf);
  long ret = SysBpf(bpfattr::cmd::obj_get_info_by_fd, &a, BPFATTR_OFFSETOFEND(bpfattr::info, info));
  *out_len = a.info_len;
  return ret;
}

// objGetInfoByFd(fd, out) -> bytes the kernel filled. `out` is zeroed first so
// that no pointer field asks the kernel to copy arrays.
Napi::Value ObjGetInfoByFd(const Napi::CallbackInfo& info) {
  int fd = FdArg(info[0], "fd");
  Bytes out = BytesArg(info[1], "info");
  if (out.length == 0 || out.length > UINT32_MAX) ThrowRange(info.Env(), "info buffer must not be empty");
  memset(out.data, 0, out.length);
  uint32_t len = 0;
  if (InfoByFd(fd, out.data, static_cast<uint32_t>(out.length), &len) != 0) {
    ThrowBpfError(info.Env(), "obj_get_info_by_fd", errno);
  }
  return Napi::Number::New(info.Env(), len);
}

// progGetMapIds(fd, out: Uint32Array) -> number of maps the program uses (may
// exceed out.length, then call again with a bigger array).
Napi::Value ProgGetMapIds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info[0], "fd");
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    ThrowType(env, "map ids output must be a Uint32Array");
  }
  auto ids = info[1].As<Napi::Uint32Array>();
  bpfattr::prog_info pi{};
  pi.nr_map_ids = static_cast<uint32_t>(ids.ElementLength());
  pi.map_ids = PtrToU64(ids.Data());
  uint32_t len = 0;
  if (InfoByFd(fd, &pi, sizeof(pi), &len) != 0) ThrowBpfError(env, "obj_get_info_by_fd", errno);
  return Napi::Number::New(env, pi.nr_map_ids);
}

// btfGetName(fd) -> the BTF object's name ("vmlinux", a module's name, or "").
Napi::Value BtfGetName(const Napi::CallbackInfo& info) {
  int fd = FdArg(info[0], "fd");
  char name[256] = {0};
  bpfattr::btf_info bi{};
  bi.name = PtrToU64(name);
  bi.name_len = sizeof(name);
  uint32_t len = 0;
  if (InfoByFd(fd, &bi, sizeof(bi), &len) != 0) {
    // Before 5.11 BTF objects have no names: name and name_len lie past the
    // kernel's struct bpf_btf_info, and it refuses non-zero bytes there.
    if (errno == E2BIG) return Napi::String::New(info.Env(), "");
    ThrowBpfError(info.Env(), "obj_get_info_by_fd", errno);
  }
  return Napi::String::New(info.Env(), name, strnlen(name, sizeof(name)));
}

// *GetNextId(startId) -> next id, or 0 at the end of the walk.
Napi::Value GetNextId(const Napi::CallbackInfo& info, unsigned cmd, const char* name) {
  bpfattr::get_id a{};
  a.start_id = U32Arg(info[0], "startId");
  if (SysBpf(cmd, &a, BPFATTR_OFFSETOFEND(bpfattr::get_id, next_id)) == 0) return Napi::Number::New(info.Env(), a.next_id);
  if (errno == ENOENT) return Napi::Number::New(info.Env(), 0);
  ThrowBpfError(info.Env(), name, errno);
}
Napi::Value ProgGetNextId(const Napi::CallbackInfo& i) { return GetNextId(i, bpfattr::cmd::prog_get_next_id, "prog_get_next_id"); }
Napi::Value MapGetNextId(const Napi::CallbackInfo& i) { return GetNextId(i, bpfattr::cmd::map_get_next_id, "map_get_next_id"); }
Napi::Value LinkGetNextId(const Napi::CallbackInfo& i) { return GetNextId(i, bpfattr::cmd::link_get_next_id, "link_get_next_id"); }
Napi::Value BtfGetNextId(const Napi::CallbackInfo& i) { return GetNextId(i, bpfattr::cmd::btf_get_next_id, "btf_get_next_id"); }

// *GetFdById(id, openFlags, tokenFd) -> fd. Only BTF_GET_FD_BY_ID takes a token (6.18+).
Napi::Value GetFdById(const Napi::CallbackInfo& info, unsigned cmd, const char* name, bool token_ok) {
  bpfattr::get_id a{};
  a.start_id = U32Arg(info[0], "id");
  if (a.start_id == 0) ThrowRange(info.Env(), "id must be at least 1");
  a.open_flags = IsAbsent(info[1]) ? 0 : U32Arg(info[1], "openFlags");
  size_t size = BPFATTR_OFFSETOFEND(bpfattr::get_id, open_flags);
  int token = OptFdArg(info[2], "tokenFd");
  if (token >= 0) {
    if (!token_ok) ThrowType(info.Env(), std::string(name) + " does not take a token");
    a.open_flags |= bpfattr::flag::TOKEN_FD;
    a.fd_by_id_token_fd = token;
    size = BPFATTR_OFFSETOFEND(bpfattr::get_id, fd_by_id_token_fd);
  }
  return FdResult(info.Env(), SysBpf(cmd, &a, size), name);
}
Napi::Value ProgGetFdById(const Napi::CallbackInfo& i) { return GetFdById(i, bpfattr::cmd::prog_get_fd_by_id, "prog_get_fd_by_id", false); }
Napi::Value MapGetFdById(const Napi::CallbackInfo& i) { return GetFdById(i, bpfattr::cmd::map_get_fd_by_id, "map_get_fd_by_id", false); }
Napi::Value LinkGetFdById(const Napi::CallbackInfo& i) { return GetFdById(i, bpfattr::cmd::link_get_fd_by_id, "link_get_fd_by_id", false); }
Napi::Value BtfGetFdById(const Napi::CallbackInfo& i) { return GetFdById(i, bpfattr::cmd::btf_get_fd_by_id, "btf_get_fd_by_id", true); }

// objNextInfo(kind, startId, info, mapIds?) -> the next object's id, or 0 at
// the end: an ID walk's step in one call (GET_NEXT_ID, GET_FD_BY_ID, the
// info into `info`, zeroed first, and for programs their map IDs into
// `mapIds` when they fit; then close), as `bpftool prog show` loops in C.
// kind: 0 programs, 1 maps (BTF and links need their fd for more than the
// info: their walks stay in JavaScript). Four calls from JavaScript per object
// cost ~400 ns beside ~4.3 µs of syscalls. Objects freed between the calls
// are skipped. The caller compares the info's nr_map_ids with mapIds.length
// and asks again from id - 1 with a bigger array when they did not fit.
Napi::Value ObjNextInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  static constexpr struct {
    unsigned next, by_id;
    const char *next_name, *by_id_name;
  } kKinds[] = {
      {bpfattr::cmd::prog_get_next_id, bpfattr::cmd::prog_get_fd_by_id, "prog_get_next_id", "prog_get_fd_by_id"},
      {bpfattr::cmd::map_get_next_id, bpfattr::cmd::map_get_fd_by_id, "map_get_next_id", "map_get_fd_by_id"},
  };
  const uint32_t kind = U32Arg(info[0], "kind");
  if (kind >= sizeof(kKinds) / sizeof(kKinds[0])) ThrowRange(env, "kind must be 0 (programs) or 1 (maps)");
  uint32_t id = U32Arg(info[1], "startId");
  Bytes out = BytesArg(info[2], "info");
  if (out.length == 0 || out.length > UINT32_MAX) ThrowRange(env, "info buffer must not be empty");
  uint32_t* map_ids = nullptr;
  uint32_t map_cap = 0;
  if (kind == 0 && !IsAbsent(info[3])) {
    if (!info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
      ThrowType(env, "map ids output must be a Uint32Array");
    }
    auto ids = info[3].As<Napi::Uint32Array>();
    map_ids = ids.Data();
    map_cap = static_cast<uint32_t>(ids.ElementLength());
  }
  const auto& k = kKinds[kind];
  for (;;) {
    bpfattr::get_id a{};
    a.start_id = id;
    if (SysBpf(k.next, &a, BPFATTR_OFFSETOFEND(bpfattr::get_id, next_id)) != 0) {
      if (errno == ENOENT) return Napi::Number::New(env, 0);
      ThrowBpfError(env, k.next_name, errno);
    }
    // IDs only grow; anything else would loop forever on a confused kernel.
    if (a.next_id <= id) ThrowBpfErrorBecause(env, k.next_name, EINVAL, nullptr, "the kernel's next id did not grow");
    id = a.next_id;
    bpfattr::get_id b{};
    b.start_id = id;
    const int fd = static_cast<int>(SysBpf(k.by_id, &b, BPFATTR_OFFSETOFEND(bpfattr::get_id, open_flags)));
    if (fd < 0) {
      if (errno == ENOENT) continue;  // freed since GET_NEXT_ID
      ThrowBpfError(env, k.by_id_name, errno);
    }
    memset(out.data, 0, out.length);
    uint32_t len = 0;
    long r = InfoByFd(fd, out.data, static_cast<uint32_t>(out.length), &len);
    constexpr size_t kNrMapIds = offsetof(bpfattr::prog_info, nr_map_ids);
    if (r == 0 && map_cap > 0 && out.length >= kNrMapIds + 4) {
      uint32_t nr;
      memcpy(&nr, out.data + kNrMapIds, 4);
      if (nr > 0 && nr <= map_cap) {
        bpfattr::prog_info pi{};
        pi.nr_map_ids = map_cap;
        pi.map_ids = PtrToU64(map_ids);
        r = InfoByFd(fd, &pi, sizeof(pi), &len);
      }
    }
    const int err = errno;
    close(fd);
    if (r != 0) ThrowBpfError(env, "obj_get_info_by_fd", err);
    return Napi::Number::New(env, id);
  }
}

// ---- BTF load ----
struct BtfLoadReq {
  std::vector<uint8_t> data;
  uint32_t log_level = 0, log_size = 0, flags = 0;
  int token = -1;
  HeldFd held_token;  // Promise form: a dup of the token, so closing it mid-call cannot redirect the call
};

std::shared_ptr<BtfLoadReq> ParseBtfLoad(const Napi::CallbackInfo& info, bool hold_fds) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) ThrowType(env, "btf_load: attributes must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  auto r = std::make_shared<BtfLoadReq>();
  Bytes b = BytesArg(o.Get("btf"), "btf");
  if (b.length < 24 || b.length > UINT32_MAX) ThrowRange(env, "btf must hold at least a 24-byte BTF header");
  r->data.assign(b.data, b.data + b.length);
  r->log_level = OptU32(o, "logLevel");
  r->log_size = LogSizeArg(o);
  r->token = OptFd(o, "tokenFd");
  if (hold_fds && r->token >= 0) {
    r->held_token = HoldFd(env, r->token, "btf_load", "tokenFd");
    r->token = r->held_token.get();
  }
  return r;
}

LoadResult DoBtfLoad(BtfLoadReq& r) {
  return LoadWithLog(r.log_level, r.log_size, [&](uint32_t level, char* buf, uint32_t size, uint32_t* true_size) {
    bpfattr::btf_load a{};
    a.btf = PtrToU64(r.data.data());
    a.btf_size = static_cast<uint32_t>(r.data.size());
    a.btf_log_level = level;
    a.btf_log_buf = PtrToU64(buf);
    a.btf_log_size = size;
    size_t attr_size = BPFATTR_OFFSETOFEND(bpfattr::btf_load, btf_log_true_size);
    if (r.token >= 0) {
      a.btf_flags = bpfattr::flag::TOKEN_FD;
      a.btf_token_fd = r.token;
      attr_size = BPFATTR_OFFSETOFEND(bpfattr::btf_load, btf_token_fd);
    }
    long ret = SysBpf(bpfattr::cmd::btf_load, &a, attr_size);
    *true_size = a.btf_log_true_size;
    return ret;
  });
}

Napi::Value BtfLoadSync(const Napi::CallbackInfo& info) {
  auto req = ParseBtfLoad(info, false);
  LoadResult r = DoBtfLoad(*req);
  return ReturnOrThrow(info.Env(), LoadSettlement(info.Env(), r, "btf_load"));
}

Napi::Value BtfLoadAsync(const Napi::CallbackInfo& info) {
  auto req = ParseBtfLoad(info, true);
  auto result = std::make_shared<LoadResult>();
  return RunAsync(
      info.Env(), [req, result] { *result = DoBtfLoad(*req); },
      [result](napi_env env) { return LoadSettlement(env, *result, "btf_load"); });
}

// tokenCreate(bpffsFd, flags) -> fd
Napi::Value TokenCreate(const Napi::CallbackInfo& info) {
  bpfattr::token_create a{};
  a.bpffs_fd = FdArg(info[0], "bpffsFd");
  a.flags = IsAbsent(info[1]) ? 0 : U32Arg(info[1], "flags");
  return FdResult(info.Env(), SysBpf(bpfattr::cmd::token_create, &a, BPFATTR_OFFSETOFEND(bpfattr::token_create, bpffs_fd)),
                  "token_create");
}

// enableStats(type) -> fd: run time and count are collected while it is open
// (BPF_ENABLE_STATS, Linux 5.8+), instead of flipping the global sysctl.
Napi::Value EnableStats(const Napi::CallbackInfo& info) {
  bpfattr::enable_stats a{};
  a.type = U32Arg(info[0], "type");
  return FdResult(info.Env(), SysBpf(bpfattr::cmd::enable_stats, &a, BPFATTR_OFFSETOFEND(bpfattr::enable_stats, type)),
                  "enable_stats");
}

}  // namespace

void InitObjects(Napi::Env env, Napi::Object exports) {
  exports.Set("objPin", Napi::Function::New(env, ObjPin, "objPin"));
  exports.Set("objGet", Napi::Function::New(env, ObjGet, "objGet"));
  exports.Set("objGetInfoByFd", Napi::Function::New(env, ObjGetInfoByFd, "objGetInfoByFd"));
  exports.Set("progGetMapIds", Napi::Function::New(env, ProgGetMapIds, "progGetMapIds"));
  exports.Set("objNextInfo", Napi::Function::New(env, ObjNextInfo, "objNextInfo"));
  exports.Set("btfGetName", Napi::Function::New(env, BtfGetName, "btfGetName"));
  exports.Set("progGetNextId", Napi::Function::New(env, ProgGetNextId, "progGetNextId"));
  exports.Set("mapGetNextId", Napi::Function::New(env, MapGetNextId, "mapGetNextId"));
  exports.Set("linkGetNextId", Napi::Function::New(env, LinkGetNextId, "linkGetNextId"));
  exports.Set("btfGetNextId", Napi::Function::New(env, BtfGetNextId, "btfGetNextId"));
  exports.Set("progGetFdById", Napi::Function::New(env, ProgGetFdById, "progGetFdById"));
  exports.Set("mapGetFdById", Napi::Function::New(env, MapGetFdById, "mapGetFdById"));
  exports.Set("linkGetFdById", Napi::Function::New(env, LinkGetFdById, "linkGetFdById"));
  exports.Set("btfGetFdById", Napi::Function::New(env, BtfGetFdById, "btfGetFdById"));
  exports.Set("btfLoad", Napi::Function::New(env, BtfLoadAsync, "btfLoad"));
  exports.Set("btfLoadSync", Napi::Function::New(env, BtfLoadSync, "btfLoadSync"));
  exports.Set("tokenCreate", Napi::Function::New(env, TokenCreate, "tokenCreate"));
  exports.Set("enableStats", Napi::Function::New(env, EnableStats, "enableStats"));
}

}  // namespace bpfkit
