// File descriptors handed between processes over unix sockets (SCM_RIGHTS),
// and readiness waits for those sockets on Node's own loop.
//
// Calls never block: sends and receives use MSG_DONTWAIT and report "would
// block" as a value, and the TypeScript layer waits with fdWait (a one-shot
// uv_poll) before trying again. Received fds are O_CLOEXEC (MSG_CMSG_CLOEXEC)
// and moved to 3 or above; deciding whether they were expected is left to the
// caller, which closes them when not.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <memory>
#include <vector>

#include "common.h"
#include "handles.h"
#include "poller.h"

namespace bpfkit {
namespace {

// The kernel's per-message limit (SCM_MAX_FD).
constexpr size_t kMaxFds = 253;

// unixSocketpair() -> [fd, fd]: a connected AF_UNIX stream pair, O_CLOEXEC.
Napi::Value UnixSocketpair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) ThrowSyscallError(env, "socketpair", errno);
  int a = SafeFd(sv[0]);
  int b = a < 0 ? -1 : SafeFd(sv[1]);
  if (a < 0 || b < 0) {
    int err = errno;
    if (a >= 0) close(a);
    if (a < 0) close(sv[1]);
    ThrowSyscallError(env, "socketpair", err);
  }
  auto out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::Number::New(env, a));
  out.Set(1u, Napi::Number::New(env, b));
  return out;
}

// sendWithFds(sockFd, data, fds) -> bytes sent, or -1 when the socket would
// block. The fds ride on the first byte sent, so data must not be empty when
// fds are given. Never raises SIGPIPE (MSG_NOSIGNAL): a gone peer is EPIPE.
Napi::Value SendWithFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock = FdArg(info[0], "sockFd");
  // The fds first: reading the array can run JavaScript (getters), which
  // could detach or free the data buffer. Its pointer is taken last, with no
  // JavaScript between it and sendmsg.
  std::vector<int> fds;
  if (!IsAbsent(info[2])) {
    if (!info[2].IsArray()) ThrowType(env, "fds must be an array of file descriptors");
    auto arr = info[2].As<Napi::Array>();
    if (arr.Length() > kMaxFds) ThrowRange(env, "at most 253 fds fit in one message (SCM_MAX_FD)");
    for (uint32_t i = 0; i < arr.Length(); i++) {
      std::string name = "fds[" + std::to_string(i) + "]";
      fds.push_back(FdArg(arr.Get(i), name.c_str()));
      if (fds.size() > kMaxFds) ThrowRange(env, "at most 253 fds fit in one message (SCM_MAX_FD)");
    }
  }
  Bytes data = BytesArg(info[1], "data");
  if (data.length == 0 && !fds.empty()) ThrowRange(env, "fds need at least one byte of data to travel with");
  iovec iov{data.data, data.length};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control;
  if (!fds.empty()) {
    control.assign(CMSG_SPACE(fds.size() * sizeof(int)), 0);
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
    memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
  }
  ssize_t n;
  do {
    n = sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Number::New(env, -1);
    ThrowSyscallError(env, "sendmsg", errno);
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

// recvWithFds(sockFd, buf, maxFds) -> { bytes, fds, truncated } or null when
// nothing is ready. bytes 0 is end of stream. `truncated` is set when the
// peer sent more fds than maxFds (MSG_CTRUNC): the kernel has closed the
// ones that did not fit, and the caller must close the rest.
Napi::Value RecvWithFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock = FdArg(info[0], "sockFd");
  uint32_t max_fds = U32Arg(info[2], "maxFds");
  if (max_fds > kMaxFds) ThrowRange(env, "maxFds must be at most 253 (SCM_MAX_FD)");
  Bytes buf = BytesArg(info[1], "buf");  // last: no JavaScript may run after taking the pointer
  if (buf.length == 0) ThrowRange(env, "buf must not be empty");
  // Room for at least one fd, so that a message carrying fds the caller did
  // not ask for still shows them (and they can be closed and reported).
  std::vector<char> control(CMSG_SPACE((max_fds == 0 ? 1 : max_fds) * sizeof(int)), 0);
  iovec iov{buf.data, buf.length};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ssize_t n;
  do {
    n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return env.Null();
    ThrowSyscallError(env, "recvmsg", errno);
  }
  std::vector<int> fds;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char* p = CMSG_DATA(c);
    for (size_t i = 0; i < count; i++) {
      int fd;
      memcpy(&fd, p + i * sizeof(int), sizeof(int));
      fds.push_back(fd);
    }
  }
  // Received fds are new to this process: move any that landed on 0-2.
  int move_err = 0;
  for (int& fd : fds) {
    int moved = SafeFd(fd);
    if (moved < 0) {
      move_err = errno;
      fd = -1;
    } else {
      fd = moved;
      ForgetFd(env, fd);
    }
  }
  if (move_err != 0) {
    for (int fd : fds) {
      if (fd >= 0) close(fd);
    }
    ThrowSyscallError(env, "fcntl", move_err, "moving a received fd above 2");
  }
  auto out = Napi::Object::New(env);
  out.Set("bytes", Napi::Number::New(env, static_cast<double>(n)));
  auto arr = Napi::Array::New(env, fds.size());
  for (size_t i = 0; i < fds.size(); i++) arr.Set(static_cast<uint32_t>(i), Napi::Number::New(env, fds[i]));
  out.Set("fds", arr);
  out.Set("truncated", Napi::Boolean::New(env, (msg.msg_flags & MSG_CTRUNC) != 0));
  return out;
}

// ---- one-shot readiness waits ----
struct Wait;
// What JavaScript holds: a link to the wait that both sides clear, so that
// neither a fired wait nor a collected handle leaves a dangling pointer.
struct WaitRef {
  Wait* wait = nullptr;
};

struct Wait {
  Napi::Env env;
  Poller* poller = nullptr;  // polls a dup of the caller's fd
  Napi::FunctionReference callback;
  std::unique_ptr<Napi::AsyncContext> context;
  WaitRef* ref = nullptr;
  explicit Wait(Napi::Env e) : env(e) {}
};

// Ends a wait without calling back: from fdWaitCancel, after it fired, or
// when the environment is torn down.
void CloseWait(Wait* w) {
  if (w->ref != nullptr) w->ref->wait = nullptr;
  if (w->poller != nullptr) w->poller->Close();
  delete w;
}

void OnReady(uv_poll_t* handle, int status, int events) {
  auto* w = static_cast<Wait*>(Poller::OwnerOf(handle));
  if (w == nullptr) return;
  Napi::Env env = w->env;
  Napi::HandleScope scope(env);
  Napi::Function cb = w->callback.Value();
  auto context = std::move(w->context);
  CloseWait(w);
  try {
    cb.MakeCallback(env.Global(), {Napi::Number::New(env, status), Napi::Number::New(env, events)}, *context);
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env, e.Value());
  }
}

// fdWait(fd, writable, callback) -> handle: calls back once with
// (status, events) when fd is readable (or writable), or hung up; a negative
// libuv status on failure. The wait polls its own dup of fd: closing the
// number while it waits cannot reach libuv; cancel the wait to end it.
Napi::Value FdWait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info[0], "fd");
  bool writable = info[1].ToBoolean();
  if (!info[2].IsFunction()) ThrowType(env, "fdWait: callback must be a function");
  int dup = DupAbove2(fd);
  if (dup < 0) ThrowSyscallError(env, "poll", errno, "fd to wait on");
  auto* w = new Wait(env);
  try {
    w->poller = Poller::Open(env, dup, [](void* owner) { CloseWait(static_cast<Wait*>(owner)); }, w);
  } catch (...) {
    delete w;
    throw;
  }
  int rc = w->poller->Start((writable ? UV_WRITABLE : UV_READABLE) | UV_DISCONNECT, OnReady);
  if (rc != 0) {
    CloseWait(w);
    ThrowSyscallError(env, "poll", -rc, "uv_poll_start");
  }
  w->callback.Reset(info[2].As<Napi::Function>(), 1);
  w->context = std::make_unique<Napi::AsyncContext>(env, "bpfkit:fdWait");
  auto* ref = new WaitRef{w};
  w->ref = ref;
  auto handle = Napi::External<WaitRef>::New(env, ref, [](Napi::Env, WaitRef* r) {
    if (r->wait != nullptr) r->wait->ref = nullptr;
    delete r;
  });
  TagHandle(handle, tags::kFdWait);
  return handle;
}

// fdWaitCancel(handle): stops a pending wait without calling back. A wait
// that already fired or was cancelled is left alone.
Napi::Value FdWaitCancel(const Napi::CallbackInfo& info) {
  WaitRef* ref = HandleArg<WaitRef>(info[0], tags::kFdWait, "handle", "fd wait");
  if (ref->wait != nullptr) CloseWait(ref->wait);
  return info.Env().Undefined();
}

}  // namespace

void InitFdpass(Napi::Env env, Napi::Object exports) {
  exports.Set("unixSocketpair", Napi::Function::New(env, UnixSocketpair, "unixSocketpair"));
  exports.Set("sendWithFds", Napi::Function::New(env, SendWithFds, "sendWithFds"));
  exports.Set("recvWithFds", Napi::Function::New(env, RecvWithFds, "recvWithFds"));
  exports.Set("fdWait", Napi::Function::New(env, FdWait, "fdWait"));
  exports.Set("fdWaitCancel", Napi::Function::New(env, FdWaitCancel, "fdWaitCancel"));
}

}  // namespace bpfkit
