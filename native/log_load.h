// The load loop shared by PROG_LOAD and BTF_LOAD: both fill a verifier log,
// both may need a bigger log buffer (ENOSPC, sized from log_true_size on
// 6.4+), and both may be asked to try again (EAGAIN).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common.h"

namespace bpfkit {

struct LoadResult {
  int fd = -1;
  int err = 0;
  std::string log;
};

// The kernel refuses log buffers over UINT_MAX >> 2 and under 128 bytes.
constexpr uint32_t kMaxLogSize = UINT32_MAX >> 2;
constexpr uint32_t kMinLogSize = 128;
constexpr uint32_t kDefaultLogSize = 64 * 1024;

// attempt(level, buf, size, &true_size) makes one syscall and returns its result.
template <typename Attempt>
LoadResult LoadWithLog(uint32_t level, uint32_t log_size, Attempt attempt) {
  std::vector<char> buf;
  uint32_t cur_level = level;
  uint32_t size = level != 0 ? (log_size != 0 ? log_size : kDefaultLogSize) : 0;
  int eagain = 0;
  for (int attempts = 0; attempts < 16; attempts++) {
    buf.assign(size, 0);
    uint32_t true_size = 0;
    long ret = attempt(cur_level, size != 0 ? buf.data() : nullptr, size, &true_size);
    int err = errno;
    auto text = [&] { return size != 0 ? std::string(buf.data(), strnlen(buf.data(), size)) : std::string(); };
    if (ret >= 0) {
      int fd = SafeFd(static_cast<int>(ret));
      if (fd < 0) return {-1, errno, text()};
      return {fd, 0, text()};
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
      size = log_size != 0 ? log_size : kDefaultLogSize * 4;
      continue;
    }
    return {-1, err, text()};
  }
  return {-1, ENOSPC, std::string(buf.data(), strnlen(buf.data(), buf.size()))};
}

// Promise form: a worker that only runs `work` off the main thread and
// settles with `onok` on it. Inputs are owned by the closure.
template <typename Work, typename Settle>
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, Work work, Settle settle)
      : Napi::AsyncWorker(env, "bpfkit"), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)),
        settle_(std::move(settle)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override { work_(); }
  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(settle_(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

 private:
  Napi::Promise::Deferred deferred_;
  Work work_;
  Settle settle_;
};

template <typename Work, typename Settle>
Napi::Value RunAsync(Napi::Env env, Work work, Settle settle) {
  auto* w = new PromiseWorker<Work, Settle>(env, std::move(work), std::move(settle));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// { fd, log } on success; a BpfError / VerifierError otherwise.
inline Napi::Value LoadResultValue(Napi::Env env, const LoadResult& r, const char* command) {
  if (r.fd < 0) ThrowBpfError(env, command, r.err, r.log);
  // Here and not in LoadWithLog: the fd caches are the main thread's, and
  // LoadWithLog also runs on workers.
  ForgetFd(env, r.fd);
  Napi::Object o = Napi::Object::New(env);
  o.Set("fd", r.fd);
  o.Set("log", r.log);
  return o;
}

inline uint32_t LogSizeArg(const Napi::Object& o) {
  uint32_t size = OptU32(o, "logSize");
  if (size != 0 && (size < kMinLogSize || size > kMaxLogSize)) {
    ThrowRange(o.Env(), "logSize must be between " + std::to_string(kMinLogSize) + " and " + std::to_string(kMaxLogSize));
  }
  return size;
}

}  // namespace bpfkit
