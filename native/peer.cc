// Who is at the other end of a unix socket: the credentials the kernel
// recorded when the peer connected (SO_PEERCRED), a pidfd for that process
// (SO_PEERPIDFD), and whether that process still exists. A broker identifies
// a tenant by these; the pidfd closes the pid-reuse race between reading the
// pid and reading /proc/<pid>.
//
// The kernel fixes a connection's peer credentials at connect() (or
// socketpair()) and never changes them, and translates the pid and ids into
// the reader's namespaces (net/core/sock.c: sk_getsockopt, cred_to_ucred).
// All calls are synchronous: each is one cheap syscall.
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"

// asm-generic/socket.h (Linux 6.5); the system headers of older distributions
// lack it. The same number on every architecture that has it in the generic
// header; this file is built for Linux x86_64 and arm64 only.
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif
// asm/unistd.h (Linux 5.1): 424 on every architecture (the unified syscall table).
#ifndef __NR_pidfd_send_signal
#define __NR_pidfd_send_signal 424
#endif

namespace bpfkit {
namespace {

// The socket's address family; TypeError for anything but AF_UNIX: other
// families have no meaningful peer credentials (a TCP socket reports pid 0
// and the overflow uid, not an error). EBADF and ENOTSOCK are SyscallErrors.
void RequireUnixSocket(Napi::Env env, int sock, const char* call) {
  int domain = 0;
  socklen_t len = sizeof domain;
  if (getsockopt(sock, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) {
    ThrowSyscallError(env, "getsockopt", errno, call, errno == ENOTSOCK ? "the fd is not a socket" : nullptr);
  }
  if (domain != AF_UNIX) {
    ThrowType(env, std::string(call) + ": sockFd " + std::to_string(sock) + " is not a unix socket (address family " +
                       std::to_string(domain) + ")");
  }
}

// unixPeerCred(sockFd) -> { pid, uid, gid }
// pid 0 means the peer's pid is not visible in our pid namespace (or the
// socket was never connected); the caller decides what that means.
Napi::Value UnixPeerCred(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock = FdArg(info[0], "sockFd");
  RequireUnixSocket(env, sock, "SO_PEERCRED");
  ucred c{};
  socklen_t len = sizeof c;
  if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &c, &len) != 0) ThrowSyscallError(env, "getsockopt", errno, "SO_PEERCRED");
  if (len != sizeof c) ThrowSyscallError(env, "getsockopt", EPROTO, "SO_PEERCRED", "the kernel returned a short struct ucred");
  auto out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, c.pid));
  out.Set("uid", Napi::Number::New(env, c.uid));
  out.Set("gid", Napi::Number::New(env, c.gid));
  return out;
}

// unixPeerPidfd(sockFd) -> fd: a pidfd (O_CLOEXEC, >= 3) for the process
// that connected (or made the socketpair). ENOPROTOOPT: the kernel is older
// than 6.5. ENODATA: the socket has no peer (never connected). ESRCH/EINVAL:
// the peer process is gone (reaped), so no pidfd can refer to it.
Napi::Value UnixPeerPidfd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock = FdArg(info[0], "sockFd");
  RequireUnixSocket(env, sock, "SO_PEERPIDFD");
  int pidfd = -1;
  socklen_t len = sizeof pidfd;
  if (getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) != 0) {
    int err = errno;
    const char* cause = err == ENOPROTOOPT     ? "the kernel has no SO_PEERPIDFD (Linux 6.5)"
                        : err == ENODATA       ? "the socket has no peer (not connected)"
                        : err == ESRCH || err == EINVAL ? "the peer exited"
                                               : nullptr;
    ThrowSyscallError(env, "getsockopt", err, "SO_PEERPIDFD", cause);
  }
  int fd = SafeFd(pidfd);
  if (fd < 0) ThrowSyscallError(env, "fcntl", errno, "moving a pidfd above 2");
  ForgetFd(env, fd);
  return Napi::Number::New(env, fd);
}

// pidfdIsAlive(pidfd) -> boolean: pidfd_send_signal(pidfd, 0), which only
// checks that the process exists (kernel/signal.c). A zombie still counts:
// until it is reaped its pid cannot be reused. ESRCH: reaped, false. EPERM
// (not root, another user's process) also proves it exists, so true.
// Other errors: EBADF (not an open fd, or not a pidfd: 6.x says EBADF for
// both), EINVAL (not a pidfd, older kernels), ENOSYS (< 5.1).
Napi::Value PidfdIsAlive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info[0], "pidfd");
  if (syscall(__NR_pidfd_send_signal, fd, 0, nullptr, 0) == 0) return Napi::Boolean::New(env, true);
  int err = errno;
  if (err == ESRCH) return Napi::Boolean::New(env, false);
  if (err == EPERM) return Napi::Boolean::New(env, true);
  ThrowSyscallError(env, "pidfd_send_signal", err, nullptr,
                    err == EBADF || err == EINVAL ? "the fd is not open, or not a pidfd" : nullptr);
}

}  // namespace

void InitPeer(Napi::Env env, Napi::Object exports) {
  exports.Set("unixPeerCred", Napi::Function::New(env, UnixPeerCred, "unixPeerCred"));
  exports.Set("unixPeerPidfd", Napi::Function::New(env, UnixPeerPidfd, "unixPeerPidfd"));
  exports.Set("pidfdIsAlive", Napi::Function::New(env, PidfdIsAlive, "pidfdIsAlive"));
}

}  // namespace bpfkit
