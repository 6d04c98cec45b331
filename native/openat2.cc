// openat2(2) (Linux 5.6) for reading inside a directory someone else
// controls (a tenant's bpffs, a container's root): the kernel resolves the
// path with RESOLVE_* restrictions (no symlinks, no escape through `..` or
// absolute paths, no mount crossing), so a path string cannot be turned
// against the caller by a symlink swapped in between checks.
//
// Read and O_PATH opens only, by construction: the allowed open flags are
// O_PATH, O_DIRECTORY and O_NOFOLLOW (O_RDONLY is 0); nothing that creates,
// writes or truncates. O_CLOEXEC is always added.
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"

// linux/openat2.h (Linux 5.6); the system headers of older distributions lack
// it. The struct and bits are uapi, the same on every architecture.
#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#else
struct open_how {
  uint64_t flags;
  uint64_t mode;
  uint64_t resolve;
};
#define RESOLVE_NO_XDEV 0x01
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_NO_SYMLINKS 0x04
#define RESOLVE_BENEATH 0x08
#define RESOLVE_IN_ROOT 0x10
#endif

// asm/unistd.h (Linux 5.6): 437 on every architecture (the unified syscall table).
#ifndef __NR_openat2
#define __NR_openat2 437
#endif

namespace bpfkit {
namespace {

constexpr uint64_t kAllowedFlags = O_PATH | O_DIRECTORY | O_NOFOLLOW;
constexpr uint64_t kAllowedResolve =
    RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH | RESOLVE_IN_ROOT;

std::string Hex(uint64_t v) {
  char buf[24];
  snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// openat2(dirFd, path, flags, resolve) -> fd (O_CLOEXEC, >= 3).
// dirFd undefined/null is AT_FDCWD. Errors: RangeError for flags or resolve
// bits outside the allowed sets, or BENEATH with IN_ROOT (they contradict);
// SyscallError 'openat2': EXDEV (the path leaves the root or crosses a
// mount), ELOOP (a symlink where none are allowed), ENOENT, ENOTDIR, EAGAIN
// (a concurrent rename made resolution unsafe: retry), ENOSYS (< 5.6).
Napi::Value Openat2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int dir = DirFdArg(info[0], "dirFd");
  std::string path = StringArg(info[1], "path", false);
  uint32_t flags = U32Arg(info[2], "flags");
  uint32_t resolve = U32Arg(info[3], "resolve");
  if ((flags & ~kAllowedFlags) != 0) {
    ThrowRange(env, "openat2: flags " + Hex(flags & ~kAllowedFlags) +
                        " are not allowed (only O_PATH, O_DIRECTORY, O_NOFOLLOW; O_RDONLY is 0)");
  }
  if ((resolve & ~kAllowedResolve) != 0) {
    ThrowRange(env, "openat2: resolve bits " + Hex(resolve & ~kAllowedResolve) +
                        " are not allowed (only RESOLVE_NO_XDEV, NO_MAGICLINKS, NO_SYMLINKS, BENEATH, IN_ROOT)");
  }
  if ((resolve & RESOLVE_BENEATH) != 0 && (resolve & RESOLVE_IN_ROOT) != 0) {
    ThrowRange(env, "openat2: RESOLVE_BENEATH and RESOLVE_IN_ROOT exclude each other");
  }
  open_how how{};
  how.flags = flags | O_CLOEXEC;
  how.mode = 0;
  how.resolve = resolve;
  long ret;
  do {
    ret = syscall(__NR_openat2, dir, path.c_str(), &how, sizeof how);
  } while (ret < 0 && errno == EINTR);
  int fd = SafeFd(ret);
  if (fd < 0) {
    int err = errno;
    const char* cause = err == EXDEV    ? "the path leaves the directory or crosses a mount"
                        : err == ELOOP  ? "a symlink on the path, and symlinks are not followed here"
                        : err == ENOSYS ? "the kernel has no openat2 (Linux 5.6)"
                                        : nullptr;
    ThrowSyscallError(env, "openat2", err, path.c_str(), cause);
  }
  ForgetFd(env, fd);
  return Napi::Number::New(env, fd);
}

}  // namespace

void InitOpenat2(Napi::Env env, Napi::Object exports) {
  exports.Set("openat2", Napi::Function::New(env, Openat2, "openat2"));
}

}  // namespace bpfkit
