#include "poller.h"

#include <fcntl.h>
#include <unistd.h>

namespace bpfkit {

int DupAbove2(int fd) { return fcntl(fd, F_DUPFD_CLOEXEC, 3); }

Poller* Poller::Open(Napi::Env env, int fd, Teardown teardown, void* owner) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    close(fd);
    ThrowType(env, "poll: no event loop in this environment");
  }
  auto* p = new Poller();
  int rc = uv_poll_init(loop, &p->poll_, fd);
  if (rc != 0) {
    delete p;
    close(fd);
    ThrowSyscallError(env, "poll", -rc, "uv_poll_init");
  }
  p->poll_.data = p;
  p->fd_ = fd;
  p->teardown_ = teardown;
  p->owner_ = owner;
  if (napi_add_async_cleanup_hook(env, OnTeardown, p, &p->hook_) != napi_ok) p->hook_ = nullptr;
  return p;
}

void* Poller::OwnerOf(uv_poll_t* handle) {
  auto* p = static_cast<Poller*>(handle->data);
  return p->closed_ ? nullptr : p->owner_;
}

int Poller::Start(int events, uv_poll_cb cb) {
  if (closed_) return UV_EBADF;
  return uv_poll_start(&poll_, events, cb);
}

void Poller::Stop() {
  if (!closed_) uv_poll_stop(&poll_);
}

void Poller::Close() {
  if (closed_) return;
  closed_ = true;
  owner_ = nullptr;
  uv_poll_stop(&poll_);
  uv_close(reinterpret_cast<uv_handle_t*>(&poll_), OnClosed);
  // uv_close has already taken the fd out of epoll (synchronously); only the
  // handle's memory waits for the callback. Closed now, so the fd is gone
  // when close() returns, not one loop turn later.
  close(fd_);
  fd_ = -1;
}

void Poller::OnClosed(uv_handle_t* handle) {
  auto* p = static_cast<Poller*>(handle->data);
  // Unregisters the hook, or, when it already ran, tells Node that this
  // part of the teardown is done.
  if (p->hook_ != nullptr) napi_remove_async_cleanup_hook(p->hook_);
  delete p;
}

void Poller::OnTeardown(napi_async_cleanup_hook_handle, void* arg) {
  auto* p = static_cast<Poller*>(arg);
  // Already closing: OnClosed finishes the teardown once libuv is done.
  if (p->closed_) return;
  if (p->teardown_ != nullptr) p->teardown_(p->owner_);
  p->Close();
}

}  // namespace bpfkit
