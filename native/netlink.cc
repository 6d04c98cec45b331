// A small rtnetlink client for the classic tc attachment (a clsact qdisc and a
// direct-action bpf filter, for kernels without tcx links), interface names to
// indexes, and running a synchronous call inside another network namespace.
//
// Every request is built in a fixed buffer from bounded parts (a kind of at
// most 15 bytes, a filter name of at most 255), every reply is read into a
// bounded buffer and every length in it is checked against what was received
// before anything is read through it. Errors are SyscallErrors naming the
// request ('RTM_NEWTFILTER') with the kernel's extended ack message as cause.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/netlink.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>  // timeval (SO_RCVTIMEO); glibc brings it through sys/socket.h, musl does not
#include <unistd.h>

#include <array>
#include <string>
#include <vector>

#include "common.h"

namespace bpfkit {
namespace {

// Older UAPI headers lack these (extended acks came with 4.12).
#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif
#ifndef NLM_F_CAPPED
#define NLM_F_CAPPED 0x100
#endif
#ifndef NLM_F_ACK_TLVS
#define NLM_F_ACK_TLVS 0x200
#endif
#ifndef NLMSGERR_ATTR_MSG
#define NLMSGERR_ATTR_MSG 1
#endif

constexpr size_t kRequestSize = 1024;
// One datagram of a reply: the kernel's dump chunks are at most a page or two;
// anything larger is refused (MSG_TRUNC) rather than read past.
constexpr size_t kReplySize = 32768;
// A dump that never ends (a kernel bug, or filters added as fast as they are
// listed) is cut off rather than grown without bound.
constexpr size_t kMaxDumpEntries = 4096;
constexpr size_t kMaxFilterName = 255;

uint32_t ClsactParent(bool egress) { return TC_H_MAKE(TC_H_CLSACT, egress ? TC_H_MIN_EGRESS : TC_H_MIN_INGRESS); }

// The socket of one request, closed on every path.
struct NetlinkSocket {
  int fd = -1;
  ~NetlinkSocket() {
    if (fd >= 0) close(fd);
  }
};

// A request: nlmsghdr + tcmsg + attributes, in a fixed buffer.
class Request {
 public:
  // `fixed`: the request's own header after nlmsghdr (tcmsg, ifinfomsg).
  Request(uint16_t type, uint16_t flags, size_t fixed = sizeof(tcmsg)) {
    hdr()->nlmsg_len = static_cast<uint32_t>(NLMSG_LENGTH(fixed));
    hdr()->nlmsg_type = type;
    hdr()->nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | flags);
  }
  nlmsghdr* hdr() { return reinterpret_cast<nlmsghdr*>(buf_.data()); }
  tcmsg* tc() { return static_cast<tcmsg*>(NLMSG_DATA(hdr())); }
  ifinfomsg* ifi() { return static_cast<ifinfomsg*>(NLMSG_DATA(hdr())); }

  // Bytes that are no attribute (the ifinfomsg that starts a peer's info).
  bool Raw(const void* data, size_t len) {
    size_t at = NLMSG_ALIGN(hdr()->nlmsg_len);
    if (at + NLMSG_ALIGN(len) > buf_.size()) return false;
    memcpy(buf_.data() + at, data, len);
    hdr()->nlmsg_len = static_cast<uint32_t>(at + NLMSG_ALIGN(len));
    return true;
  }

  // False when it does not fit (never with the bounded parts used here).
  bool Add(uint16_t type, const void* data, size_t len) {
    size_t at = NLMSG_ALIGN(hdr()->nlmsg_len);
    size_t need = RTA_LENGTH(len);
    if (len > 0xffff || at + RTA_ALIGN(need) > buf_.size()) return false;
    auto* rta = reinterpret_cast<rtattr*>(buf_.data() + at);
    rta->rta_type = type;
    rta->rta_len = static_cast<uint16_t>(need);
    if (len > 0) memcpy(RTA_DATA(rta), data, len);
    hdr()->nlmsg_len = static_cast<uint32_t>(at + RTA_ALIGN(need));
    return true;
  }
  bool AddString(uint16_t type, const std::string& s) { return Add(type, s.c_str(), s.size() + 1); }
  bool AddU32(uint16_t type, uint32_t v) { return Add(type, &v, sizeof(v)); }
  // A nested attribute: Begin returns its offset, End sets its length.
  size_t Begin(uint16_t type) {
    size_t at = NLMSG_ALIGN(hdr()->nlmsg_len);
    return Add(type, nullptr, 0) ? at : 0;
  }
  void End(size_t at) {
    if (at == 0) return;
    auto* rta = reinterpret_cast<rtattr*>(buf_.data() + at);
    rta->rta_len = static_cast<uint16_t>(hdr()->nlmsg_len - at);
  }

 private:
  alignas(nlmsghdr) std::array<uint8_t, kRequestSize> buf_{};
};

// What a failed request says: the errno and the kernel's extended ack text.
struct Failure {
  int err = 0;
  std::string message;
};

// The extended ack text after a struct nlmsgerr, when the kernel sent one.
std::string ExtackMessage(const nlmsghdr* h) {
  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS)) return std::string();
  const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
  size_t at = NLMSG_LENGTH(sizeof(nlmsgerr));
  // Without NLM_F_CAPPED the request's payload follows its header.
  if (!(h->nlmsg_flags & NLM_F_CAPPED)) {
    if (e->msg.nlmsg_len < sizeof(nlmsghdr)) return std::string();
    at += NLMSG_ALIGN(e->msg.nlmsg_len) - sizeof(nlmsghdr);
  }
  const auto* base = reinterpret_cast<const uint8_t*>(h);
  while (at + sizeof(nlattr) <= h->nlmsg_len) {
    const auto* a = reinterpret_cast<const nlattr*>(base + at);
    if (a->nla_len < sizeof(nlattr) || at + a->nla_len > h->nlmsg_len) break;
    if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG && a->nla_len > NLA_HDRLEN) {
      const char* s = reinterpret_cast<const char*>(base + at + NLA_HDRLEN);
      size_t n = strnlen(s, a->nla_len - NLA_HDRLEN);
      return std::string(s, n);
    }
    at += NLA_ALIGN(a->nla_len);
  }
  return std::string();
}

// Sends `req` and reads until its ack (or NLMSG_DONE for dumps); every
// message of `want_type` on the way is handed to `on_msg`. false with
// `fail` set when the kernel (or the socket) says no.
template <typename OnMsg>
bool Transact(Request& req, uint16_t want_type, Failure& fail, OnMsg on_msg) {
  NetlinkSocket sock;
  sock.fd = SafeFd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (sock.fd < 0) {
    fail = {errno, "cannot open a NETLINK_ROUTE socket"};
    return false;
  }
  int one = 1;
  // Best effort: kernels before 4.12 lack extended acks and say ENOPROTOOPT.
  setsockopt(sock.fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
  setsockopt(sock.fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
  // The kernel answers at once; a socket that stays silent fails the request
  // (EAGAIN) instead of blocking the event loop for good.
  timeval limit{10, 0};
  setsockopt(sock.fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  static thread_local uint32_t seq = 0;
  req.hdr()->nlmsg_seq = ++seq;
  ssize_t sent = sendto(sock.fd, req.hdr(), req.hdr()->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel));
  if (sent < 0) {
    fail = {errno, "sendto on the netlink socket failed"};
    return false;
  }
  // NLM_F_DUMP's bits mean NLM_F_REPLACE and NLM_F_EXCL on a NEW request:
  // only a GET is a dump.
  bool dump = req.hdr()->nlmsg_type == RTM_GETTFILTER && (req.hdr()->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
  std::vector<uint8_t> buf(kReplySize);
  size_t entries = 0;
  for (;;) {
    iovec iov{buf.data(), buf.size()};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    ssize_t n = recvmsg(sock.fd, &mh, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail = {errno, errno == EAGAIN ? "no answer from the kernel within 10 s" : "recvmsg on the netlink socket failed"};
      return false;
    }
    if (mh.msg_flags & MSG_TRUNC) {
      fail = {EMSGSIZE, "a netlink reply was larger than bpfkit reads"};
      return false;
    }
    // Signed: NLMSG_NEXT subtracts the aligned length, which must end the
    // walk (NLMSG_OK fails below zero) rather than wrap around.
    int left = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_seq != req.hdr()->nlmsg_seq) continue;  // not ours (never, on a private socket)
      if (h->nlmsg_type == NLMSG_DONE) return true;
      if (h->nlmsg_type == NLMSG_ERROR) {
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) {
          fail = {EBADMSG, "a short netlink error message"};
          return false;
        }
        const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
        if (e->error == 0) {
          if (!dump) return true;
          continue;
        }
        fail = {-e->error, ExtackMessage(h)};
        return false;
      }
      if (h->nlmsg_type == want_type) {
        if (++entries > kMaxDumpEntries) {
          fail = {E2BIG, "the kernel's answer lists more than 4096 entries"};
          return false;
        }
        on_msg(h);
      }
    }
  }
}

[[noreturn]] void ThrowNetlink(Napi::Env env, const char* request, const Failure& f, const std::string& detail) {
  ThrowSyscallError(env, request, f.err, detail.c_str(), f.message.empty() ? nullptr : f.message.c_str());
}

int IfindexArg(const Napi::Value& v, const char* name) {
  uint32_t ifindex = U32Arg(v, name);
  if (ifindex == 0 || ifindex > 0x7fffffff) ThrowRange(v.Env(), std::string(name) + " must be an interface index of 1..2^31-1");
  return static_cast<int>(ifindex);
}

std::string Where(int ifindex, bool egress) {
  return std::string(egress ? "egress" : "ingress") + " of ifindex " + std::to_string(ifindex);
}

// ifNameToIndex(name) -> ifindex in the calling thread's network namespace.
Napi::Value IfNameToIndex(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) ThrowType(env, "interface name must be a string");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  if (name.empty() || name.size() >= IFNAMSIZ || name.find('\0') != std::string::npos || name.find('/') != std::string::npos) {
    ThrowType(env, "interface name must be 1..15 bytes without NUL or '/'");
  }
  unsigned idx = if_nametoindex(name.c_str());
  if (idx == 0) {
    int err = errno == 0 ? ENODEV : errno;
    std::string detail = "interface '" + name + "'";
    ThrowSyscallError(env, "if_nametoindex", err, detail.c_str(),
                      err == ENODEV ? "no interface of that name in this network namespace" : nullptr);
  }
  return Napi::Number::New(env, idx);
}

// ifIndexToName(ifindex) -> name in the calling thread's network namespace.
Napi::Value IfIndexToName(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ifindex = IfindexArg(info[0], "ifindex");
  char name[IF_NAMESIZE + 1] = {};
  if (if_indextoname(static_cast<unsigned>(ifindex), name) == nullptr) {
    int err = errno;
    std::string detail = "ifindex " + std::to_string(ifindex);
    ThrowSyscallError(env, "if_indextoname", err, detail.c_str(),
                      err == ENXIO || err == ENODEV ? "no interface with that index in this network namespace" : nullptr);
  }
  return Napi::String::New(env, name);
}

// withNetns(nsFd, fn) -> fn's result: calls fn synchronously with the calling
// thread in the network namespace nsFd refers to, and returns the thread to
// its own namespace afterwards, whether fn returned or threw. Only this
// thread moves (setns is per thread); async work fn starts runs elsewhere.
Napi::Value WithNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ns = FdArg(info[0], "nsFd");
  if (!info[1].IsFunction()) ThrowType(env, "withNetns: fn must be a function");
  Napi::Function fn = info[1].As<Napi::Function>();
  // A closed nsFd must fail here: the open below would otherwise take its
  // number, and setns to that fd (this thread's own namespace) would run fn
  // at home while the caller believes it is inside another namespace.
  if (fcntl(ns, F_GETFD) < 0) {
    std::string detail = "fd " + std::to_string(ns);
    ThrowSyscallError(env, "setns", EBADF, detail.c_str(), "the fd is not open");
  }
  int home = SafeFd(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (home < 0) ThrowSyscallError(env, "open", errno, "/proc/thread-self/ns/net", "cannot hold the current network namespace");
  if (setns(ns, CLONE_NEWNET) != 0) {
    int err = errno;
    close(home);
    std::string detail = "fd " + std::to_string(ns);
    ThrowSyscallError(env, "setns", err, detail.c_str(),
                      err == EINVAL ? "the fd is not a network namespace" : err == EBADF ? "the fd is not open" : nullptr);
  }
  auto back = [&]() {
    // A thread left in another namespace would send everything after to the
    // wrong place: not a recoverable state.
    if (setns(home, CLONE_NEWNET) != 0) Napi::Error::Fatal("withNetns", "cannot return to the original network namespace");
    close(home);
  };
  Napi::Value result;
  try {
    result = fn.Call(env.Undefined(), {});
  } catch (...) {
    back();
    throw;
  }
  back();
  return result;
}

// netnsCreate() -> fd of a new network namespace holding only its loopback
// device (ifindex 1, down): unshare(CLONE_NEWNET) moves this thread into it
// just long enough to open it, then the thread goes back. The namespace lives
// as long as the fd (or anything made inside it) does. For probes and tests
// that need a device nobody else uses.
Napi::Value NetnsCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int home = SafeFd(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (home < 0) ThrowSyscallError(env, "open", errno, "/proc/thread-self/ns/net", "cannot hold the current network namespace");
  if (unshare(CLONE_NEWNET) != 0) {
    int err = errno;
    close(home);
    ThrowSyscallError(env, "unshare", err, "CLONE_NEWNET", err == EPERM ? "creating a network namespace needs CAP_SYS_ADMIN" : nullptr);
  }
  int made = SafeFd(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  int err = errno;
  if (setns(home, CLONE_NEWNET) != 0) Napi::Error::Fatal("netnsCreate", "cannot return to the original network namespace");
  close(home);
  if (made < 0) ThrowSyscallError(env, "open", err, "/proc/thread-self/ns/net", "cannot open the new network namespace");
  ForgetFd(env, made);
  return Napi::Number::New(env, made);
}

// IFLA_NETKIT_* (include/uapi/linux/if_link.h, Linux 6.7): newer than the
// UAPI headers bpfkit builds against.
constexpr uint16_t kNetkitPeerInfo = 1;
constexpr uint16_t kNetkitMode = 5;
constexpr uint32_t kNetkitL2 = 0;  // enum netkit_mode { NETKIT_L2, NETKIT_L3 }

std::string IfNameArg(const Napi::Value& v, const char* what) {
  if (!v.IsString()) ThrowType(v.Env(), std::string(what) + " must be a string");
  std::string name = v.As<Napi::String>().Utf8Value();
  if (name.empty() || name.size() >= IFNAMSIZ || name.find('\0') != std::string::npos || name.find('/') != std::string::npos) {
    ThrowType(v.Env(), std::string(what) + " must be 1..15 bytes without NUL or '/'");
  }
  return name;
}

// netkitCreate(name, peerName, l2?): a netkit pair (Linux 6.7, CONFIG_NETKIT)
// in the calling thread's network namespace, both ends down, the default
// policy (forward), in L3 mode (no link-layer header, the kernel's default) or
// with l2 in L2 mode (Ethernet frames). RTM_NEWLINK with NLM_F_EXCL: EEXIST
// when a device has either name; EOPNOTSUPP without netkit.
Napi::Value NetkitCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = IfNameArg(info[0], "name");
  std::string peer = IfNameArg(info[1], "peerName");
  if (!IsAbsent(info[2]) && !info[2].IsBoolean()) ThrowType(env, "l2 must be a boolean");
  bool l2 = !IsAbsent(info[2]) && info[2].As<Napi::Boolean>().Value();
  Request req(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, sizeof(ifinfomsg));
  req.ifi()->ifi_family = AF_UNSPEC;
  bool ok = req.AddString(IFLA_IFNAME, name);
  size_t linkinfo = req.Begin(IFLA_LINKINFO);
  ok = ok && linkinfo != 0 && req.AddString(IFLA_INFO_KIND, "netkit");
  size_t data = req.Begin(IFLA_INFO_DATA);
  size_t peer_info = req.Begin(kNetkitPeerInfo);
  ifinfomsg peer_ifi{};
  peer_ifi.ifi_family = AF_UNSPEC;
  ok = ok && data != 0 && peer_info != 0 && req.Raw(&peer_ifi, sizeof(peer_ifi)) && req.AddString(IFLA_IFNAME, peer);
  req.End(peer_info);
  if (l2) ok = ok && req.AddU32(kNetkitMode, kNetkitL2);
  req.End(data);
  req.End(linkinfo);
  if (!ok) ThrowRange(env, "netkitCreate: request does not fit");
  Failure f;
  if (!Transact(req, 0, f, [](const nlmsghdr*) {})) ThrowNetlink(env, "RTM_NEWLINK", f, "netkit pair " + name + "/" + peer);
  return env.Undefined();
}

// The clsact qdisc of an interface, as RTM_NEWQDISC and RTM_DELQDISC name it.
void DescribeClsact(Request& req, int ifindex) {
  req.tc()->tcm_family = AF_UNSPEC;
  req.tc()->tcm_ifindex = ifindex;
  req.tc()->tcm_handle = TC_H_MAKE(TC_H_CLSACT, 0);
  req.tc()->tcm_parent = TC_H_CLSACT;
  req.AddString(TCA_KIND, "clsact");
}

// tcClsactAdd(ifindex) -> true when this call created the clsact qdisc, false
// when one was already there (NLM_F_EXCL makes that answer exact).
Napi::Value TcClsactAdd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ifindex = IfindexArg(info[0], "ifindex");
  Request req(RTM_NEWQDISC, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
  DescribeClsact(req, ifindex);
  Failure f;
  if (Transact(req, 0, f, [](const nlmsghdr*) {})) return Napi::Boolean::New(env, true);
  if (f.err == EEXIST) return Napi::Boolean::New(env, false);
  ThrowNetlink(env, "RTM_NEWQDISC", f, "clsact qdisc on ifindex " + std::to_string(ifindex));
}

// tcClsactDelete(ifindex) -> false when there was no clsact qdisc.
Napi::Value TcClsactDelete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ifindex = IfindexArg(info[0], "ifindex");
  Request req(RTM_DELQDISC, NLM_F_ACK);
  DescribeClsact(req, ifindex);
  Failure f;
  if (Transact(req, 0, f, [](const nlmsghdr*) {})) return Napi::Boolean::New(env, true);
  if (f.err == ENOENT || f.err == EINVAL) return Napi::Boolean::New(env, false);
  ThrowNetlink(env, "RTM_DELQDISC", f, "clsact qdisc on ifindex " + std::to_string(ifindex));
}

// A filter as the kernel describes it in RTM_NEWTFILTER.
struct FilterEntry {
  uint32_t priority = 0, handle = 0, protocol = 0, chain = 0, prog_id = 0, bpf_flags = 0;
  std::string kind, name;
  bool has_options = false;
};

// Attributes of a payload at `at`..`end` of a message, each bounds-checked.
template <typename Fn>
void ForEachAttr(const uint8_t* base, size_t at, size_t end, Fn fn) {
  while (at + sizeof(rtattr) <= end) {
    const auto* a = reinterpret_cast<const rtattr*>(base + at);
    if (a->rta_len < sizeof(rtattr) || at + a->rta_len > end) return;
    fn(a->rta_type & NLA_TYPE_MASK, base + at + RTA_LENGTH(0), a->rta_len - RTA_LENGTH(0), at + RTA_LENGTH(0));
    at += RTA_ALIGN(a->rta_len);
  }
}

std::string AttrString(const uint8_t* p, size_t n) { return std::string(reinterpret_cast<const char*>(p), strnlen(reinterpret_cast<const char*>(p), n)); }
uint32_t AttrU32(const uint8_t* p, size_t n) {
  uint32_t v = 0;
  if (n >= 4) memcpy(&v, p, 4);
  return v;
}

bool ParseFilter(const nlmsghdr* h, FilterEntry& out) {
  if (h->nlmsg_len < NLMSG_LENGTH(sizeof(tcmsg))) return false;
  const auto* t = static_cast<const tcmsg*>(NLMSG_DATA(h));
  out.priority = TC_H_MAJ(t->tcm_info) >> 16;
  out.protocol = ntohs(static_cast<uint16_t>(TC_H_MIN(t->tcm_info)));
  out.handle = t->tcm_handle;
  const auto* base = reinterpret_cast<const uint8_t*>(h);
  ForEachAttr(base, NLMSG_LENGTH(sizeof(tcmsg)), h->nlmsg_len, [&](uint16_t type, const uint8_t* p, size_t n, size_t at) {
    if (type == TCA_KIND) out.kind = AttrString(p, n);
    if (type == TCA_CHAIN) out.chain = AttrU32(p, n);
    if (type == TCA_OPTIONS) {
      out.has_options = true;
      ForEachAttr(base, at, at + n, [&](uint16_t bt, const uint8_t* bp, size_t bn, size_t) {
        if (bt == TCA_BPF_ID) out.prog_id = AttrU32(bp, bn);
        if (bt == TCA_BPF_NAME) out.name = AttrString(bp, bn);
        if (bt == TCA_BPF_FLAGS) out.bpf_flags = AttrU32(bp, bn);
      });
    }
  });
  return true;
}

Napi::Object FilterObject(Napi::Env env, const FilterEntry& e) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("priority", e.priority);
  o.Set("handle", e.handle);
  o.Set("protocol", e.protocol);
  o.Set("chain", e.chain);
  o.Set("kind", e.kind);
  o.Set("progId", e.prog_id);
  o.Set("name", e.name);
  o.Set("directAction", (e.bpf_flags & TCA_BPF_FLAG_ACT_DIRECT) != 0);
  return o;
}

struct FilterTarget {
  int ifindex = 0;
  bool egress = false;
  uint32_t priority = 0, handle = 0;
};

FilterTarget TargetArg(const Napi::Object& o) {
  FilterTarget t;
  t.ifindex = IfindexArg(o.Get("ifindex"), "ifindex");
  Napi::Value e = o.Get("egress");
  if (!e.IsBoolean()) ThrowType(o.Env(), "egress must be a boolean");
  t.egress = e.As<Napi::Boolean>().Value();
  t.priority = OptU32(o, "priority");
  if (t.priority > 0xffff) ThrowRange(o.Env(), "priority must be 0..65535");
  t.handle = OptU32(o, "handle");
  return t;
}

void FillFilter(Request& req, const FilterTarget& t) {
  req.tc()->tcm_family = AF_UNSPEC;
  req.tc()->tcm_ifindex = t.ifindex;
  req.tc()->tcm_parent = ClsactParent(t.egress);
  req.tc()->tcm_handle = t.handle;
  req.tc()->tcm_info = TC_H_MAKE(t.priority << 16, htons(ETH_P_ALL));
}

// tcFilterAdd({ ifindex, egress, priority, handle, progFd, name, replace }) ->
//   { priority, handle }: a direct-action bpf filter (all protocols) on the
// clsact qdisc's ingress or egress; priority and handle 0 let the kernel pick,
// and the kernel's echo of the new filter says what it picked.
Napi::Value TcFilterAdd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) ThrowType(env, "tcFilterAdd: attributes must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  FilterTarget t = TargetArg(o);
  int prog = FdArg(o.Get("progFd"), "progFd");
  std::string name = OptString(o, "name", kMaxFilterName);
  Napi::Value rv = o.Get("replace");
  if (!IsAbsent(rv) && !rv.IsBoolean()) ThrowType(env, "replace must be a boolean");
  bool replace = !IsAbsent(rv) && rv.As<Napi::Boolean>().Value();
  if (replace && (t.priority == 0 || t.handle == 0)) ThrowRange(env, "tcFilterAdd: replacing needs the filter's priority and handle");
  // Replacing swaps the program of the filter at that priority and handle in
  // one step (NLM_F_REPLACE); ENOENT when there is none.
  uint16_t how = replace ? NLM_F_REPLACE : NLM_F_CREATE | NLM_F_EXCL;
  Request req(RTM_NEWTFILTER, static_cast<uint16_t>(NLM_F_ACK | NLM_F_ECHO | how));
  FillFilter(req, t);
  bool ok = req.AddString(TCA_KIND, "bpf");
  size_t opts = req.Begin(TCA_OPTIONS);
  ok = ok && opts != 0 && req.AddU32(TCA_BPF_FD, static_cast<uint32_t>(prog));
  if (!name.empty()) ok = ok && req.AddString(TCA_BPF_NAME, name);
  ok = ok && req.AddU32(TCA_BPF_FLAGS, TCA_BPF_FLAG_ACT_DIRECT);
  req.End(opts);
  if (!ok) ThrowRange(env, "tcFilterAdd: request does not fit");
  FilterEntry made;
  bool echoed = false;
  Failure f;
  if (!Transact(req, RTM_NEWTFILTER, f, [&](const nlmsghdr* h) { echoed = ParseFilter(h, made) || echoed; })) {
    ThrowNetlink(env, "RTM_NEWTFILTER", f, "bpf filter on the " + Where(t.ifindex, t.egress));
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("priority", echoed ? made.priority : t.priority);
  out.Set("handle", echoed ? made.handle : t.handle);
  return out;
}

// tcFilterDelete({ ifindex, egress, priority, handle }): the one bpf filter at
// that priority and handle. Errors: ENOENT when it is not there.
Napi::Value TcFilterDelete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) ThrowType(env, "tcFilterDelete: attributes must be an object");
  FilterTarget t = TargetArg(info[0].As<Napi::Object>());
  if (t.priority == 0 || t.handle == 0) ThrowRange(env, "tcFilterDelete: priority and handle must be given (a zero deletes every filter there)");
  Request req(RTM_DELTFILTER, NLM_F_ACK);
  FillFilter(req, t);
  req.AddString(TCA_KIND, "bpf");
  Failure f;
  if (!Transact(req, 0, f, [](const nlmsghdr*) {})) {
    ThrowNetlink(env, "RTM_DELTFILTER", f,
                 "bpf filter priority " + std::to_string(t.priority) + " handle " + std::to_string(t.handle) + " on the " + Where(t.ifindex, t.egress));
  }
  return env.Undefined();
}

// tcFilterList({ ifindex, egress }) -> [{ priority, handle, protocol, chain,
//   kind, progId, name, directAction }]: every filter on the clsact qdisc's
// ingress or egress (the entries of each filter kind, not the kind itself);
// empty when there is no clsact qdisc.
Napi::Value TcFilterList(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) ThrowType(env, "tcFilterList: attributes must be an object");
  FilterTarget t = TargetArg(info[0].As<Napi::Object>());
  Request req(RTM_GETTFILTER, NLM_F_DUMP);
  req.tc()->tcm_family = AF_UNSPEC;
  req.tc()->tcm_ifindex = t.ifindex;
  req.tc()->tcm_parent = ClsactParent(t.egress);
  std::vector<FilterEntry> entries;
  Failure f;
  bool ok = Transact(req, RTM_NEWTFILTER, f, [&](const nlmsghdr* h) {
    FilterEntry e;
    // The first message of each priority describes the classifier itself
    // (handle 0, no options); the filters follow it.
    if (ParseFilter(h, e) && (e.handle != 0 || e.has_options)) entries.push_back(e);
  });
  if (!ok) {
    if (f.err == EINVAL || f.err == ENOENT) return Napi::Array::New(env, 0);
    ThrowNetlink(env, "RTM_GETTFILTER", f, "filters on the " + Where(t.ifindex, t.egress));
  }
  Napi::Array out = Napi::Array::New(env, entries.size());
  for (size_t i = 0; i < entries.size(); i++) out.Set(static_cast<uint32_t>(i), FilterObject(env, entries[i]));
  return out;
}

}  // namespace

void InitNetlink(Napi::Env env, Napi::Object exports) {
  exports.Set("ifNameToIndex", Napi::Function::New(env, IfNameToIndex, "ifNameToIndex"));
  exports.Set("ifIndexToName", Napi::Function::New(env, IfIndexToName, "ifIndexToName"));
  exports.Set("withNetns", Napi::Function::New(env, WithNetns, "withNetns"));
  exports.Set("netnsCreate", Napi::Function::New(env, NetnsCreate, "netnsCreate"));
  exports.Set("netkitCreate", Napi::Function::New(env, NetkitCreate, "netkitCreate"));
  exports.Set("tcClsactAdd", Napi::Function::New(env, TcClsactAdd, "tcClsactAdd"));
  exports.Set("tcClsactDelete", Napi::Function::New(env, TcClsactDelete, "tcClsactDelete"));
  exports.Set("tcFilterAdd", Napi::Function::New(env, TcFilterAdd, "tcFilterAdd"));
  exports.Set("tcFilterDelete", Napi::Function::New(env, TcFilterDelete, "tcFilterDelete"));
  exports.Set("tcFilterList", Napi::Function::New(env, TcFilterList, "tcFilterList"));
}

}  // namespace bpfkit
