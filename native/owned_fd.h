// An fd the native layer owns for the length of a scope: the dup a call works
// on, so that a number closed and reused behind its back (by JavaScript, or
// by another worker_thread: fd numbers are process-wide) cannot redirect the
// call to another object between the check and the syscall.
#pragma once
#include <unistd.h>

#include "common.h"

namespace bpfkit {

class OwnedFd {
 public:
  explicit OwnedFd(int fd) : fd_(fd) {}
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  ~OwnedFd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }
  // Hands the fd to a new owner.
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

// A dup of the fd argument `fd` (>= 3, O_CLOEXEC) for one call; throws a
// BpfError for `command` (EBADF: not open) when it cannot be made.
inline int DupForCall(Napi::Env env, int fd, const char* command) {
  int dup = DupCloexec(fd);
  if (dup < 0) ThrowBpfError(env, command, errno);
  return dup;
}

}  // namespace bpfkit
