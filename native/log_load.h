// The load loop shared by PROG_LOAD and BTF_LOAD: both fill a verifier log,
// both may need a bigger log buffer (ENOSPC, sized from log_true_size on
// 6.4+), and both may be asked to try again (EAGAIN).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "promise_worker.h"

namespace bpfkit {

struct LoadResult {
  HeldFd fd;  // the new object, closed unless handed to JavaScript
  int err = 0;
  std::string log;
};

// The kernel refuses log buffers over UINT_MAX >> 2 and under 128 bytes.
constexpr uint32_t kMaxLogSize = UINT32_MAX >> 2;
constexpr uint32_t kMinLogSize = 128;
constexpr uint32_t kDefaultLogSize = 64 * 1024;
// The first buffer is at most this big, whatever logSize asks: most logs are
// short, and a rejected load must not cost a gigabyte up front. A longer log
// is grown into on ENOSPC, to the size the kernel reports (6.4+) or fourfold.
constexpr uint32_t kFirstLogSize = 16 * 1024 * 1024;

// attempt(level, buf, size, &true_size) makes one syscall and returns its result.
template <typename Attempt>
LoadResult LoadWithLog(uint32_t level, uint32_t log_size, Attempt attempt) {
  std::unique_ptr<char[]> buf;
  uint32_t cur_level = level;
  auto first = [](uint32_t want) { return want < kFirstLogSize ? want : kFirstLogSize; };
  uint32_t size = level != 0 ? first(log_size != 0 ? log_size : kDefaultLogSize) : 0;
  int eagain = 0;
  auto text = [&] { return size != 0 ? std::string(buf.get(), strnlen(buf.get(), size)) : std::string(); };
  for (int attempts = 0; attempts < 16; attempts++) {
    // Not zero-filled: the kernel NUL-terminates what it writes, and pages
    // it does not write are never touched.
    if (size != 0) {
      buf.reset(new char[size]);
      buf[0] = '\0';
    }
    uint32_t true_size = 0;
    long ret = attempt(cur_level, size != 0 ? buf.get() : nullptr, size, &true_size);
    int err = errno;
    LoadResult r;
    if (ret >= 0) {
      r.fd = HeldFd(SafeFd(static_cast<int>(ret)));
      r.err = r.fd.get() < 0 ? errno : 0;
      r.log = text();
      return r;
    }
    if (err == EAGAIN && ++eagain < 5) continue;
    if (err == ENOSPC && cur_level != 0 && size < kMaxLogSize) {
      uint64_t grown = true_size > size ? static_cast<uint64_t>(true_size) + 1 : static_cast<uint64_t>(size) * 4;
      size = static_cast<uint32_t>(grown > kMaxLogSize ? kMaxLogSize : grown);
      continue;
    }
    // Asked for no log but rejected: load again with a log so the error can
    // say why, as libbpf does.
    if (cur_level == 0 && (err == EACCES || err == EINVAL)) {
      cur_level = 1;
      size = first(log_size != 0 ? log_size : kDefaultLogSize * 4);
      continue;
    }
    r.err = err;
    r.log = text();
    return r;
  }
  LoadResult r;
  r.err = ENOSPC;
  r.log = text();
  return r;
}

// { fd, log } on success; a BpfError / VerifierError otherwise. Built with
// the C API only (RawObject): the Promise forms call it from a completion.
inline Settlement LoadSettlement(napi_env env, LoadResult& r, const char* command) {
  Settlement s;
  if (r.fd.get() < 0) {
    s.value = MakeErrorNoThrow(env, "bpf", command, r.err, r.log, nullptr);
    return s;
  }
  RawObject o(env);
  o.Number("fd", r.fd.get());
  o.String("log", r.log);
  s.value = o.get();
  s.ok = s.value != nullptr;
  // Handed over only when the result exists; otherwise r still closes it.
  // ForgetFd here and not in LoadWithLog: fd bookkeeping is the main
  // thread's, and LoadWithLog also runs on workers.
  if (s.ok) ForgetFd(env, r.fd.Release());
  return s;
}

inline uint32_t LogSizeValue(const Napi::Value& v) {
  uint32_t size = IsAbsent(v) ? 0 : U32Arg(v, "logSize");
  if (size != 0 && (size < kMinLogSize || size > kMaxLogSize)) {
    ThrowRange(v.Env(), "logSize must be between " + std::to_string(kMinLogSize) + " and " + std::to_string(kMaxLogSize) +
                            " (the kernel's limits for a verifier log), got " + std::to_string(size));
  }
  return size;
}

inline uint32_t LogSizeArg(const Napi::Object& o) { return LogSizeValue(o.Get("logSize")); }

}  // namespace bpfkit
