// Program details beyond the fixed-size info: the translated instructions,
// what the verifier made of the program, as `bpftool prog dump xlated` shows them.
#include <vector>

#include "common.h"

namespace bpfkit {
namespace {

// progGetXlatedInsns(fd) -> Uint8Array of the translated instructions. Empty
// when the caller may not see them (the kernel zeroes the length without
// CAP_SYS_ADMIN or CAP_PERFMON).
Napi::Value ProgGetXlatedInsns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info[0], "fd");
  // The length can only be asked first and filled second; a program's
  // instructions never change after load, so two calls agree.
  for (int attempt = 0; attempt < 2; attempt++) {
    bpfattr::prog_info pi{};
    bpfattr::info a{};
    a.bpf_fd = fd;
    a.info_len = sizeof(pi);
    a.info = PtrToU64(&pi);
    if (SysBpf(bpfattr::cmd::obj_get_info_by_fd, &a, BPFATTR_OFFSETOFEND(bpfattr::info, info)) != 0) {
      ThrowBpfError(env, "obj_get_info_by_fd", errno);
    }
    uint32_t len = pi.xlated_prog_len;
    if (len == 0) return Napi::Uint8Array::New(env, 0);
    std::vector<uint8_t> buf(len);
    bpfattr::prog_info pi2{};
    pi2.xlated_prog_len = len;
    pi2.xlated_prog_insns = PtrToU64(buf.data());
    a.info_len = sizeof(pi2);
    a.info = PtrToU64(&pi2);
    if (SysBpf(bpfattr::cmd::obj_get_info_by_fd, &a, BPFATTR_OFFSETOFEND(bpfattr::info, info)) != 0) {
      ThrowBpfError(env, "obj_get_info_by_fd", errno);
    }
    if (pi2.xlated_prog_len <= len) {
      auto out = Napi::Uint8Array::New(env, pi2.xlated_prog_len);
      memcpy(out.Data(), buf.data(), pi2.xlated_prog_len);
      return out;
    }
  }
  ThrowBpfError(env, "obj_get_info_by_fd", EAGAIN, std::string(), "translated program length kept changing");
}

}  // namespace

void InitProgInfo(Napi::Env env, Napi::Object exports) {
  exports.Set("progGetXlatedInsns", Napi::Function::New(env, ProgGetXlatedInsns, "progGetXlatedInsns"));
}

}  // namespace bpfkit
