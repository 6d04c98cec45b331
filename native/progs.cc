// PROG_LOAD and PROG_TEST_RUN, each in a Promise form run on a worker and a
// sync form. The worker only makes the syscall; inputs are copied first, so
// JavaScript may reuse its buffers at once.
#include <memory>
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

std::vector<uint8_t> CopyBytes(const Napi::Value& v, const char* name) {
  Bytes b = BytesArg(v, name);
  return std::vector<uint8_t>(b.data, b.data + b.length);
}

std::unique_ptr<ProgLoadReq> ParseProgLoad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) ThrowType(env, "prog_load: attributes must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  auto r = std::make_unique<ProgLoadReq>();
  auto& a = r->attr;
  a.prog_type = OptU32(o, "progType");
  r->insns = CopyBytes(o.Get("insns"), "insns");
  if (r->insns.empty() || r->insns.size() % 8 != 0) {
    ThrowRange(env, "insns must be a non-empty multiple of 8 bytes (one eBPF instruction each), got " +
                        std::to_string(r->insns.size()));
  }
  if (r->insns.size() / 8 > UINT32_MAX) ThrowRange(env, "too many instructions");
  r->license = OptString(o, "license", 128);
  std::string name = OptString(o, "name", sizeof(a.prog_name) - 1);
  memcpy(a.prog_name, name.data(), name.size());
  r->log_level = OptU32(o, "logLevel");
  r->log_size = LogSizeArg(o);
  a.kern_version = OptU32(o, "kernVersion");
  a.prog_flags = OptU32(o, "progFlags");
  a.prog_ifindex = OptU32(o, "progIfindex");
  a.expected_attach_type = OptU32(o, "expectedAttachType");
  int btf = OptFd(o, "progBtfFd");
  a.prog_btf_fd = btf < 0 ? 0 : btf;
  a.attach_btf_id = OptU32(o, "attachBtfId");
  int attach_prog = OptFd(o, "attachProgFd");
  int attach_btf_obj = OptFd(o, "attachBtfObjFd");
  if (attach_prog >= 0 && attach_btf_obj >= 0) ThrowType(env, "attachProgFd and attachBtfObjFd are exclusive");
  a.attach_prog_fd = attach_prog >= 0 ? attach_prog : (attach_btf_obj >= 0 ? attach_btf_obj : 0);
  r->attr_size = BPFATTR_OFFSETOFEND(bpfattr::prog_load, log_true_size);
  // func_info / line_info: records of a declared size, copied whole.
  auto records = [&](const char* key, const char* size_key, std::vector<uint8_t>& out) -> std::pair<uint32_t, uint32_t> {
    Napi::Value v = o.Get(key);
    if (IsAbsent(v)) return {0, 0};
    out = CopyBytes(v, key);
    uint32_t rec_size = OptU32(o, size_key);
    if (rec_size == 0 || out.size() % rec_size != 0) {
      ThrowRange(env, std::string(key) + " must be a multiple of " + size_key);
    }
    return {rec_size, static_cast<uint32_t>(out.size() / rec_size)};
  };
  auto fi = records("funcInfo", "funcInfoRecSize", r->func_info);
  a.func_info_rec_size = fi.first;
  a.func_info_cnt = fi.second;
  auto li = records("lineInfo", "lineInfoRecSize", r->line_info);
  a.line_info_rec_size = li.first;
  a.line_info_cnt = li.second;
  Napi::Value fds = o.Get("fdArray");
  if (!IsAbsent(fds)) {
    if (!fds.IsTypedArray() || fds.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
      ThrowType(env, "fdArray must be an Int32Array");
    }
    r->fd_array = CopyBytes(fds, "fdArray");
  }
  int token = OptFd(o, "tokenFd");
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
  auto req = ParseProgLoad(info);
  return LoadResultValue(info.Env(), DoProgLoad(*req), "prog_load");
}

// progLoad(attrs) -> Promise<{ fd, log }>
Napi::Value ProgLoadAsync(const Napi::CallbackInfo& info) {
  std::shared_ptr<ProgLoadReq> req = ParseProgLoad(info);
  auto result = std::make_shared<LoadResult>();
  return RunAsync(
      info.Env(), [req, result] { *result = DoProgLoad(*req); },
      [result](Napi::Env env) { return LoadResultValue(env, *result, "prog_load"); });
}

// ---- test run ----

struct TestRunReq {
  int prog_fd = -1;
  std::vector<uint8_t> data_in, ctx_in, data_out, ctx_out;
  bool want_data_out = false, want_ctx_out = false;
  uint32_t repeat = 0, flags = 0, cpu = 0, batch_size = 0;
  // results
  long ret = 0;
  int err = 0;
  uint32_t retval = 0, duration = 0, data_size_out = 0, ctx_size_out = 0;
};

std::shared_ptr<TestRunReq> ParseTestRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto r = std::make_shared<TestRunReq>();
  r->prog_fd = FdArg(info[0], "fd");
  Napi::Object o = info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
  if (!IsAbsent(o.Get("data"))) r->data_in = CopyBytes(o.Get("data"), "data");
  if (!IsAbsent(o.Get("ctx"))) r->ctx_in = CopyBytes(o.Get("ctx"), "ctx");
  // The kernel writes at most data_size_out / ctx_size_out bytes; we own buffers of exactly that size.
  if (!IsAbsent(o.Get("dataOutSize"))) {
    r->want_data_out = true;
    r->data_out.resize(OptU32(o, "dataOutSize"));
  }
  if (!IsAbsent(o.Get("ctxOutSize"))) {
    r->want_ctx_out = true;
    r->ctx_out.resize(OptU32(o, "ctxOutSize"));
  }
  r->repeat = OptU32(o, "repeat");
  r->flags = OptU32(o, "flags");
  r->cpu = OptU32(o, "cpu");
  r->batch_size = OptU32(o, "batchSize");
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

Napi::Value TestRunValue(Napi::Env env, const TestRunReq& r) {
  if (r.ret < 0) {
    const char* detail = nullptr;
    std::string d;
    if (r.err == ENOSPC) {
      d = "output needs " + std::to_string(r.data_size_out) + " data bytes and " + std::to_string(r.ctx_size_out) +
          " ctx bytes";
      detail = d.c_str();
    }
    ThrowBpfError(env, "prog_test_run", r.err, std::string(), detail);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("retval", r.retval);
  o.Set("duration", r.duration);
  if (r.want_data_out) {
    size_t n = std::min<size_t>(r.data_size_out, r.data_out.size());
    o.Set("dataOut", Napi::Buffer<uint8_t>::Copy(env, r.data_out.data(), n));
  }
  if (r.want_ctx_out) {
    size_t n = std::min<size_t>(r.ctx_size_out, r.ctx_out.size());
    o.Set("ctxOut", Napi::Buffer<uint8_t>::Copy(env, r.ctx_out.data(), n));
  }
  return o;
}

// progTestRunSync(fd, opts) -> { retval, duration, dataOut?, ctxOut? }
Napi::Value ProgTestRunSync(const Napi::CallbackInfo& info) {
  auto req = ParseTestRun(info);
  DoTestRun(*req);
  return TestRunValue(info.Env(), *req);
}

// progTestRun(fd, opts) -> Promise<{ retval, duration, dataOut?, ctxOut? }>
Napi::Value ProgTestRunAsync(const Napi::CallbackInfo& info) {
  auto req = ParseTestRun(info);
  return RunAsync(
      info.Env(), [req] { DoTestRun(*req); }, [req](Napi::Env env) { return TestRunValue(env, *req); });
}

}  // namespace

void InitProgs(Napi::Env env, Napi::Object exports) {
  exports.Set("progLoad", Napi::Function::New(env, ProgLoadAsync, "progLoad"));
  exports.Set("progLoadSync", Napi::Function::New(env, ProgLoadSync, "progLoadSync"));
  exports.Set("progTestRun", Napi::Function::New(env, ProgTestRunAsync, "progTestRun"));
  exports.Set("progTestRunSync", Napi::Function::New(env, ProgTestRunSync, "progTestRunSync"));
}

}  // namespace bpfkit
