// PROG_LOAD and PROG_TEST_RUN, each in a Promise form run on a worker and a
// sync form. The worker only makes the syscall; inputs are copied first, so
// JavaScript may reuse its buffers at once, and the Promise forms hold dups
// of every fd the call names (program, maps in the instructions, fd_array,
// BTF, token), so closing one of them mid-call cannot redirect the call.
#include <unistd.h>

#include <memory>
#include <utility>
#include <unordered_map>
#include <vector>

#include "common.h"
#include "log_load.h"

namespace bpfkit {
namespace {

struct ProgLoadReq {
  bpfattr::prog_load attr{};
  std::vector<uint8_t> insns;
  std::string license;
  std::vector<uint8_t> func_info;
  std::vector<uint8_t> line_info;
  std::vector<uint8_t> fd_array;
  uint32_t log_level = 0;
  uint32_t log_size = 0;
  size_t attr_size = 0;
};

// Swaps fd numbers for dups the request owns (Promise forms only: a sync
// call finishes before JavaScript can close anything). One dup per number.
class FdHolder {
 public:
  FdHolder(Napi::Env env, const char* command, std::vector<HeldFd>* held) : env_(env), command_(command), held_(held) {}
  int operator()(int fd, const std::string& name) {
    if (held_ == nullptr || fd < 0) return fd;
    auto it = dups_.find(fd);
    if (it != dups_.end()) return it->second;
    held_->push_back(HoldFd(env_, fd, command_, name.c_str()));
    int dup = held_->back().get();
    dups_.emplace(fd, dup);
    return dup;
  }

 private:
  Napi::Env env_;
  const char* command_;
  std::vector<HeldFd>* held_;
  std::unordered_map<int, int> dups_;
};

int32_t ReadImm(const uint8_t* insn) {
  int32_t imm;
  memcpy(&imm, insn + 4, sizeof(imm));
  return imm;
}
void WriteImm(uint8_t* insn, int32_t imm) { memcpy(insn + 4, &imm, sizeof(imm)); }

// The fds inside instructions: ld_imm64 of a map (BPF_PSEUDO_MAP_FD,
// BPF_PSEUDO_MAP_VALUE: imm) or of a module's BTF object (BPF_PSEUDO_BTF_ID:
// the second half's imm, 0 for vmlinux). Other forms carry ids or indices.
void HoldInsnFds(std::vector<uint8_t>& insns, FdHolder& hold) {
  constexpr uint8_t kLdImm64 = 0x18;  // BPF_LD | BPF_IMM | BPF_DW
  const size_t n = insns.size() / 8;
  for (size_t i = 0; i + 1 < n; i++) {
    uint8_t* insn = insns.data() + i * 8;
    if (insn[0] != kLdImm64) continue;
    const uint8_t src = insn[1] >> 4;
    if (src == 1 || src == 2) {
      WriteImm(insn, hold(ReadImm(insn), "insns[" + std::to_string(i) + "] map fd"));
    } else if (src == 3 && ReadImm(insn + 8) != 0) {
      WriteImm(insn + 8, hold(ReadImm(insn + 8), "insns[" + std::to_string(i + 1) + "] BTF fd"));
    }
    i++;  // the second half of ld_imm64
  }
}

std::vector<uint8_t> CopyBytes(const Napi::Value& v, const char* name) {
  Bytes b = BytesArg(v, name);
  return std::vector<uint8_t>(b.data, b.data + b.length);
}

// The attributes progLoad reads. Looking each up by name internalizes the
// name on every call (V8's string table): ~150 ns a name with the caches a
// load leaves cold, 3 us for all twenty, while a load names few of them. So
// the keys present are listed once and matched here.
struct ProgLoadArgs {
  Napi::Value prog_type, insns, license, name, log_level, log_size, kern_version, prog_flags, prog_ifindex,
      expected_attach_type, prog_btf_fd, attach_btf_id, attach_prog_fd, attach_btf_obj_fd, func_info,
      func_info_rec_size, line_info, line_info_rec_size, fd_array, token_fd;
};

constexpr std::pair<const char*, Napi::Value ProgLoadArgs::*> kProgLoadKeys[] = {
    {"progType", &ProgLoadArgs::prog_type},
    {"insns", &ProgLoadArgs::insns},
    {"license", &ProgLoadArgs::license},
    {"name", &ProgLoadArgs::name},
    {"logLevel", &ProgLoadArgs::log_level},
    {"logSize", &ProgLoadArgs::log_size},
    {"kernVersion", &ProgLoadArgs::kern_version},
    {"progFlags", &ProgLoadArgs::prog_flags},
    {"progIfindex", &ProgLoadArgs::prog_ifindex},
    {"expectedAttachType", &ProgLoadArgs::expected_attach_type},
    {"progBtfFd", &ProgLoadArgs::prog_btf_fd},
    {"attachBtfId", &ProgLoadArgs::attach_btf_id},
    {"attachProgFd", &ProgLoadArgs::attach_prog_fd},
    {"attachBtfObjFd", &ProgLoadArgs::attach_btf_obj_fd},
    {"funcInfo", &ProgLoadArgs::func_info},
    {"funcInfoRecSize", &ProgLoadArgs::func_info_rec_size},
    {"lineInfo", &ProgLoadArgs::line_info},
    {"lineInfoRecSize", &ProgLoadArgs::line_info_rec_size},
    {"fdArray", &ProgLoadArgs::fd_array},
    {"tokenFd", &ProgLoadArgs::token_fd},
};

// The enumerable string keys of `o` (its prototypes' too, as a lookup by
// name would find them) that name an attribute; others are ignored, as before.
ProgLoadArgs ReadProgLoadArgs(Napi::Env env, napi_value o) {
  ProgLoadArgs a;
  for (const auto& k : kProgLoadKeys) a.*k.second = env.Undefined();
  napi_value keys = nullptr;
  uint32_t n = 0;
  if (napi_get_property_names(env, o, &keys) != napi_ok || napi_get_array_length(env, keys, &n) != napi_ok) {
    throw Napi::Error::New(env);  // the pending exception (a Proxy's trap threw), or Node-API's own
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value key = nullptr;
    char text[24];
    size_t len = 0;
    if (napi_get_element(env, keys, i, &key) != napi_ok) throw Napi::Error::New(env);
    // Longer than any attribute's name: not one (a truncated copy must not match).
    if (napi_get_value_string_utf8(env, key, text, sizeof(text), &len) != napi_ok || len + 1 >= sizeof(text)) continue;
    for (const auto& k : kProgLoadKeys) {
      if (strcmp(k.first, text) != 0) continue;
      napi_value v = nullptr;
      if (napi_get_property(env, o, key, &v) != napi_ok) throw Napi::Error::New(env);
      a.*k.second = Napi::Value(env, v);
      break;
    }
  }
  return a;
}

uint32_t U32Or0(const Napi::Value& v, const char* name) { return IsAbsent(v) ? 0 : U32Arg(v, name); }

// The attribute object's values, read (every getter or Proxy trap it has
// runs here) before any of its fds is held.
ProgLoadArgs AttrsArg(Napi::Env env, const Napi::Value& attrs) {
  if (!attrs.IsObject()) ThrowType(env, "prog_load: attributes must be an object");
  return ReadProgLoadArgs(env, attrs);
}

// `hold` swaps each fd for a dup (Promise forms) or passes it through (sync).
// Runs no JavaScript: the values were read by AttrsArg.
std::unique_ptr<ProgLoadReq> ParseProgLoad(Napi::Env env, const ProgLoadArgs& o, FdHolder& hold) {
  auto r = std::make_unique<ProgLoadReq>();
  auto& a = r->attr;
  a.prog_type = U32Or0(o.prog_type, "progType");
  r->insns = CopyBytes(o.insns, "insns");
  if (r->insns.empty() || r->insns.size() % 8 != 0) {
    ThrowRange(env, "insns must be a non-empty multiple of 8 bytes (one eBPF instruction each), got " +
                        std::to_string(r->insns.size()));
  }
  if (r->insns.size() / 8 > UINT32_MAX) ThrowRange(env, "too many instructions");
  r->license = OptStringArg(o.license, "license", 128);
  std::string name = OptStringArg(o.name, "name", sizeof(a.prog_name) - 1);
  memcpy(a.prog_name, name.data(), name.size());
  r->log_level = U32Or0(o.log_level, "logLevel");
  r->log_size = LogSizeValue(o.log_size);
  a.kern_version = U32Or0(o.kern_version, "kernVersion");
  a.prog_flags = U32Or0(o.prog_flags, "progFlags");
  a.prog_ifindex = U32Or0(o.prog_ifindex, "progIfindex");
  a.expected_attach_type = U32Or0(o.expected_attach_type, "expectedAttachType");
  int btf = hold(OptFdArg(o.prog_btf_fd, "progBtfFd"), "progBtfFd");
  a.prog_btf_fd = btf < 0 ? 0 : btf;
  a.attach_btf_id = U32Or0(o.attach_btf_id, "attachBtfId");
  int attach_prog = hold(OptFdArg(o.attach_prog_fd, "attachProgFd"), "attachProgFd");
  int attach_btf_obj = hold(OptFdArg(o.attach_btf_obj_fd, "attachBtfObjFd"), "attachBtfObjFd");
  if (attach_prog >= 0 && attach_btf_obj >= 0) ThrowType(env, "attachProgFd and attachBtfObjFd are exclusive");
  a.attach_prog_fd = attach_prog >= 0 ? attach_prog : (attach_btf_obj >= 0 ? attach_btf_obj : 0);
  r->attr_size = BPFATTR_OFFSETOFEND(bpfattr::prog_load, log_true_size);
  // func_info / line_info: records of a declared size, copied whole.
  auto records = [&](const Napi::Value& v, const Napi::Value& size, const char* key, const char* size_key,
                     std::vector<uint8_t>& out) -> std::pair<uint32_t, uint32_t> {
    if (IsAbsent(v)) return {0, 0};
    out = CopyBytes(v, key);
    uint32_t rec_size = U32Or0(size, size_key);
    if (rec_size == 0 || out.size() % rec_size != 0) {
      ThrowRange(env, std::string(key) + " must be a multiple of " + size_key);
    }
    return {rec_size, static_cast<uint32_t>(out.size() / rec_size)};
  };
  auto fi = records(o.func_info, o.func_info_rec_size, "funcInfo", "funcInfoRecSize", r->func_info);
  a.func_info_rec_size = fi.first;
  a.func_info_cnt = fi.second;
  auto li = records(o.line_info, o.line_info_rec_size, "lineInfo", "lineInfoRecSize", r->line_info);
  a.line_info_rec_size = li.first;
  a.line_info_cnt = li.second;
  const Napi::Value& fds = o.fd_array;
  if (!IsAbsent(fds)) {
    if (!fds.IsTypedArray() || fds.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
      ThrowType(env, "fdArray must be an Int32Array");
    }
    r->fd_array = CopyBytes(fds, "fdArray");
    for (size_t i = 0; i + 4 <= r->fd_array.size(); i += 4) {
      int32_t fd;
      memcpy(&fd, r->fd_array.data() + i, sizeof(fd));
      fd = hold(fd, "fdArray[" + std::to_string(i / 4) + "]");
      memcpy(r->fd_array.data() + i, &fd, sizeof(fd));
    }
  }
  HoldInsnFds(r->insns, hold);
  int token = hold(OptFdArg(o.token_fd, "tokenFd"), "tokenFd");
  if (token >= 0) {
    a.prog_flags |= bpfattr::flag::TOKEN_FD;
    a.prog_token_fd = token;
    r->attr_size = BPFATTR_OFFSETOFEND(bpfattr::prog_load, prog_token_fd);
  }
  return r;
}

LoadResult DoProgLoad(ProgLoadReq& r) {
  return LoadWithLog(r.log_level, r.log_size, [&](uint32_t level, char* buf, uint32_t size, uint32_t* true_size) {
    bpfattr::prog_load a = r.attr;
    a.insns = PtrToU64(r.insns.data());
    a.insn_cnt = static_cast<uint32_t>(r.insns.size() / 8);
    a.license = PtrToU64(r.license.c_str());
    a.log_level = level;
    a.log_buf = PtrToU64(buf);
    a.log_size = size;
    if (!r.func_info.empty()) a.func_info = PtrToU64(r.func_info.data());
    if (!r.line_info.empty()) a.line_info = PtrToU64(r.line_info.data());
    if (!r.fd_array.empty()) a.fd_array = PtrToU64(r.fd_array.data());
    long ret = SysBpf(bpfattr::cmd::prog_load, &a, r.attr_size);
    *true_size = a.log_true_size;
    return ret;
  });
}

// progLoadSync(attrs) -> { fd, log }
Napi::Value ProgLoadSync(const Napi::CallbackInfo& info) {
  FdHolder as_given(info.Env(), "prog_load", nullptr);
  auto req = ParseProgLoad(info.Env(), AttrsArg(info.Env(), info[0]), as_given);
  LoadResult r = DoProgLoad(*req);
  return ReturnOrThrow(info.Env(), LoadSettlement(info.Env(), r, "prog_load"));
}

// progLoad(attrs) -> Promise<{ fd, log }>
Napi::Value ProgLoadAsync(const Napi::CallbackInfo& info) {
  auto held = std::make_shared<std::vector<HeldFd>>();
  FdHolder hold(info.Env(), "prog_load", held.get());
  std::shared_ptr<ProgLoadReq> req = ParseProgLoad(info.Env(), AttrsArg(info.Env(), info[0]), hold);
  auto result = std::make_shared<LoadResult>();
  return RunAsync(
      info.Env(), [req, held, result] { *result = DoProgLoad(*req); },
      [result](napi_env env) { return LoadSettlement(env, *result, "prog_load"); });
}

// The loads of progLoadAll, and the dups they work on: one per distinct fd
// for the whole batch (a collection's programs name the same maps).
struct ProgLoadBatch {
  std::vector<HeldFd> held;
  std::vector<std::unique_ptr<ProgLoadReq>> reqs;
  std::vector<LoadResult> results;
};

// progLoadAll([attrs, ...]) -> Promise<Array<{ fd, log } | Error>>: the
// loads in order on one worker, one thread-pool round trip for all (each
// round trip is two thread switches, as costly as verifying a small
// program). The first refusal ends the batch: the array then ends with its
// error, and the programs before it are the caller's to close. Every
// attribute object is checked before any load.
Napi::Value ProgLoadAllAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) ThrowType(env, "prog_load: expected an array of attribute objects");
  Napi::Array list = info[0].As<Napi::Array>();
  // Every element's values first, then the fds held: JavaScript run by one
  // element's getters cannot close and reuse a number another element's
  // dup was already made for.
  const uint32_t n = list.Length();
  std::vector<ProgLoadArgs> attrs;
  attrs.reserve(n);
  for (uint32_t i = 0; i < n; i++) attrs.push_back(AttrsArg(env, list.Get(i)));
  auto batch = std::make_shared<ProgLoadBatch>();
  FdHolder hold(env, "prog_load", &batch->held);
  for (const ProgLoadArgs& a : attrs) batch->reqs.push_back(ParseProgLoad(env, a, hold));
  batch->results.reserve(n);
  return RunAsync(
      env,
      [batch] {
        for (auto& req : batch->reqs) {
          batch->results.push_back(DoProgLoad(*req));
          if (batch->results.back().fd.get() < 0) break;
        }
      },
      [batch](napi_env env) {
        Settlement s;
        napi_value out = nullptr;
        if (napi_create_array_with_length(env, batch->results.size(), &out) != napi_ok) return s;
        // Fds already handed to an element go back to nobody if a later
        // element cannot be built (the isolate is going away): closed here.
        std::vector<int> handed;
        handed.reserve(batch->results.size());
        for (size_t i = 0; i < batch->results.size(); i++) {
          int fd = batch->results[i].fd.get();
          Settlement one = LoadSettlement(env, batch->results[i], "prog_load");
          if (one.ok) handed.push_back(fd);  // released by LoadSettlement: ours to close until JavaScript has it
          if (one.value == nullptr || napi_set_element(env, out, static_cast<uint32_t>(i), one.value) != napi_ok) {
            for (int h : handed) close(h);
            return s;
          }
        }
        s.value = out;
        s.ok = true;
        return s;
      });
}

// ---- test run ----

struct TestRunReq {
  int prog_fd = -1;
  HeldFd held_prog;  // Promise form: the dup the run uses
  std::vector<uint8_t> data_in, ctx_in, data_out, ctx_out;
  bool want_data_out = false, want_ctx_out = false;
  uint32_t repeat = 0, flags = 0, cpu = 0, batch_size = 0;
  // results
  long ret = 0;
  int err = 0;
  uint32_t retval = 0, duration = 0, data_size_out = 0, ctx_size_out = 0;
};

// The most a test run can write back. Packet data: a test skb is one
// kmalloc'd head (KMALLOC_MAX_SIZE, 4 MiB with 4 KiB pages, even once a
// program grows it) and a test XDP frame is a page plus at most
// MAX_SKB_FRAGS (<= 45) pages of fragments. Context: BPF_PROG_TYPE_SYSCALL
// takes the largest, up to U16_MAX bytes; the others' are small structs.
// Bigger requests are refused instead of allocated and zero-filled.
size_t MaxTestDataOut() {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t xdp = 46 * page;
  const size_t skb = 4u << 20;
  return xdp > skb ? xdp : skb;
}
constexpr size_t kMaxTestCtxOut = 0xffff;

size_t OutSizeArg(const Napi::Object& o, const char* key, size_t max) {
  uint32_t n = OptU32(o, key);
  if (n > max) {
    ThrowRange(o.Env(), std::string(key) + " must be at most " + std::to_string(max) +
                            " (the most a test run can return), got " + std::to_string(n));
  }
  return n;
}

std::shared_ptr<TestRunReq> ParseTestRun(const Napi::CallbackInfo& info, bool hold_fds) {
  Napi::Env env = info.Env();
  auto r = std::make_shared<TestRunReq>();
  r->prog_fd = FdArg(info[0], "fd");
  Napi::Object o = info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
  if (!IsAbsent(o.Get("data"))) r->data_in = CopyBytes(o.Get("data"), "data");
  if (!IsAbsent(o.Get("ctx"))) r->ctx_in = CopyBytes(o.Get("ctx"), "ctx");
  // The kernel writes at most data_size_out / ctx_size_out bytes; we own buffers of exactly that size.
  if (!IsAbsent(o.Get("dataOutSize"))) {
    r->want_data_out = true;
    r->data_out.resize(OutSizeArg(o, "dataOutSize", MaxTestDataOut()));
  }
  if (!IsAbsent(o.Get("ctxOutSize"))) {
    r->want_ctx_out = true;
    r->ctx_out.resize(OutSizeArg(o, "ctxOutSize", kMaxTestCtxOut));
  }
  r->repeat = OptU32(o, "repeat");
  r->flags = OptU32(o, "flags");
  r->cpu = OptU32(o, "cpu");
  r->batch_size = OptU32(o, "batchSize");
  // Last, after every getter: the run works on this dup, whatever happens
  // to the caller's number while it is in flight.
  if (hold_fds) {
    r->held_prog = HoldFd(env, r->prog_fd, "prog_test_run", "fd");
    r->prog_fd = r->held_prog.get();
  }
  return r;
}

void DoTestRun(TestRunReq& r) {
  bpfattr::test a{};
  a.prog_fd = r.prog_fd;
  a.data_in = PtrToU64(r.data_in.empty() ? nullptr : r.data_in.data());
  a.data_size_in = static_cast<uint32_t>(r.data_in.size());
  if (r.want_data_out) {
    a.data_out = PtrToU64(r.data_out.data());
    a.data_size_out = static_cast<uint32_t>(r.data_out.size());
  }
  a.ctx_in = PtrToU64(r.ctx_in.empty() ? nullptr : r.ctx_in.data());
  a.ctx_size_in = static_cast<uint32_t>(r.ctx_in.size());
  if (r.want_ctx_out) {
    a.ctx_out = PtrToU64(r.ctx_out.data());
    a.ctx_size_out = static_cast<uint32_t>(r.ctx_out.size());
  }
  a.repeat = r.repeat;
  a.flags = r.flags;
  a.cpu = r.cpu;
  a.batch_size = r.batch_size;
  size_t size = r.batch_size ? BPFATTR_OFFSETOFEND(bpfattr::test, batch_size)
                : (r.flags || r.cpu) ? BPFATTR_OFFSETOFEND(bpfattr::test, cpu)
                : (r.want_ctx_out || !r.ctx_in.empty()) ? BPFATTR_OFFSETOFEND(bpfattr::test, ctx_out)
                                                         : BPFATTR_OFFSETOFEND(bpfattr::test, duration);
  int tries = 0;
  do {
    r.ret = SysBpf(bpfattr::cmd::prog_test_run, &a, size);
    r.err = r.ret < 0 ? errno : 0;
  } while (r.ret < 0 && r.err == EAGAIN && ++tries < 5);
  r.retval = a.retval;
  r.duration = a.duration;
  r.data_size_out = a.data_size_out;
  r.ctx_size_out = a.ctx_size_out;
}

// { retval, duration, dataOut?, ctxOut? } or the BpfError, built with the
// C API only (RawObject): the Promise form calls it from a completion.
Settlement TestRunSettlement(napi_env env, const TestRunReq& r) {
  Settlement s;
  if (r.ret < 0) {
    std::string detail;
    if (r.err == ENOSPC) {
      detail = "output needs " + std::to_string(r.data_size_out) + " data bytes and " + std::to_string(r.ctx_size_out) +
               " ctx bytes";
    }
    s.value = MakeErrorNoThrow(env, "bpf", "prog_test_run", r.err, std::string(), detail.empty() ? nullptr : detail.c_str());
    return s;
  }
  RawObject o(env);
  o.Number("retval", r.retval);
  o.Number("duration", r.duration);
  if (r.want_data_out) o.Buffer("dataOut", r.data_out.data(), std::min<size_t>(r.data_size_out, r.data_out.size()));
  if (r.want_ctx_out) o.Buffer("ctxOut", r.ctx_out.data(), std::min<size_t>(r.ctx_size_out, r.ctx_out.size()));
  s.value = o.get();
  s.ok = true;
  return s;
}

// progTestRunSync(fd, opts) -> { retval, duration, dataOut?, ctxOut? }
Napi::Value ProgTestRunSync(const Napi::CallbackInfo& info) {
  auto req = ParseTestRun(info, false);
  DoTestRun(*req);
  return ReturnOrThrow(info.Env(), TestRunSettlement(info.Env(), *req));
}

// progTestRun(fd, opts) -> Promise<{ retval, duration, dataOut?, ctxOut? }>
Napi::Value ProgTestRunAsync(const Napi::CallbackInfo& info) {
  auto req = ParseTestRun(info, true);
  return RunAsync(
      info.Env(), [req] { DoTestRun(*req); }, [req](napi_env env) { return TestRunSettlement(env, *req); });
}

}  // namespace

void InitProgs(Napi::Env env, Napi::Object exports) {
  exports.Set("progLoad", Napi::Function::New(env, ProgLoadAsync, "progLoad"));
  exports.Set("progLoadSync", Napi::Function::New(env, ProgLoadSync, "progLoadSync"));
  exports.Set("progLoadAll", Napi::Function::New(env, ProgLoadAllAsync, "progLoadAll"));
  exports.Set("progTestRun", Napi::Function::New(env, ProgTestRunAsync, "progTestRun"));
  exports.Set("progTestRunSync", Napi::Function::New(env, ProgTestRunSync, "progTestRunSync"));
}

}  // namespace bpfkit
