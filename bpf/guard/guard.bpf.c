// The guard: BPF LSM programs that make the kernel enforce bpfkit policies
// for registered tenants (lib/guard/ fills the maps and reads the events).
// Every hook first finds the tenant of the request; a request of no tenant
// is allowed at once, so the host's own BPF is untouched.
//
// A tenant is found, in this order, by
//   1. the token of the request (tokens made from a bpffs registered by its
//      device, recorded at bpf_token_create),
//   2. the token's user namespace,
//   3. the calling task's user namespace,
//   4. the calling task's cgroup or its nearest registered ancestor.
// bpf_prog_load's token argument is NULL on 6.9+ kernels: bpf_prog_load()
// moves the token into prog->aux->token before the hook, so the program's
// aux is read when the argument is empty.
//
// Kernel types are subsets read with CO-RE (preserve_access_index); no
// vmlinux.h, so the object does not depend on the kernel it was built on.
// Needs Linux 6.9 (the token hooks and their arguments) and the bpf LSM.
// Rebuild: npm run build:guard (scripts/build-fixtures.mjs bpf/guard)
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "guard.h"

#define CORE __attribute__((preserve_access_index))
#define EPERM 1
// PROC_USER_INIT_INO: the initial user namespace is never a tenant's.
#define INIT_USER_NS_INUM 0xEFFFFFFDU

struct ns_common { unsigned int inum; } CORE;
struct user_namespace { struct ns_common ns; } CORE;
struct bpf_token { struct user_namespace *userns; } CORE;
struct cred { struct user_namespace *user_ns; } CORE;
struct kernfs_node { __u64 id; } CORE;
struct cgroup { int level; struct kernfs_node *kn; struct cgroup *ancestors[]; } CORE;
struct css_set { struct cgroup *dfl_cgrp; } CORE;
struct task_struct { const struct cred *cred; struct css_set *cgroups; } CORE;
struct super_block { __u32 s_dev; } CORE;
struct dentry { struct super_block *d_sb; } CORE;
struct path { struct dentry *dentry; } CORE;
struct btf { __u32 id; } CORE;
struct bpf_prog_aux {
  __u32 attach_btf_id;
  struct btf *attach_btf;
  struct bpf_token *token;
  char name[16];
} CORE;
struct bpf_prog {
  __u32 len;
  enum bpf_prog_type type;
  enum bpf_attach_type expected_attach_type;
  struct bpf_prog_aux *aux;
  struct bpf_insn insnsi[];
} CORE;
struct bpf_map {
  enum bpf_map_type map_type;
  __u32 key_size;
  __u32 value_size;
  __u32 max_entries;
  char name[16];
} CORE;

// Every map is pinned by name in Guard.start's pinPath, so that Guard.open
// finds them (the collection loader reuses pins of LIBBPF_PIN_BY_NAME maps).
#define PINNED __uint(pinning, LIBBPF_PIN_BY_NAME);

// Tenant lookups. Keys are what the kernel knows: a user namespace's inode
// number, a cgroup's id, a bpffs superblock's device (kernel encoding).
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, GUARD_MAX_MATCHES); __type(key, __u32); __type(value, __u32); PINNED } by_userns SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, GUARD_MAX_MATCHES); __type(key, __u64); __type(value, __u32); PINNED } by_cgroup SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, GUARD_MAX_MATCHES); __type(key, __u32); __type(value, __u32); PINNED } by_bpffs SEC(".maps");
// Live tokens made from a registered bpffs, by address: tenant.
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, GUARD_MAX_TOKENS); __type(key, __u64); __type(value, __u32); PINNED } tokens SEC(".maps");

// Rules are replaced while hooks read them: no preallocation, so a replaced
// or deleted element stays readable until the readers' RCU section ends.
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, GUARD_MAX_TENANTS); __uint(map_flags, BPF_F_NO_PREALLOC); __type(key, __u32); __type(value, struct guard_tenant); PINNED } tenants SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, GUARD_MAX_TENANTS * GUARD_MAX_CONTEXTS * 2); __uint(map_flags, BPF_F_NO_PREALLOC); __type(key, struct guard_context_key); __type(value, struct guard_context); PINNED } contexts SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, GUARD_MAX_TARGETS); __uint(map_flags, BPF_F_NO_PREALLOC); __type(key, struct guard_target_key); __type(value, __u8); PINNED } targets SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, GUARD_MAX_KFUNCS); __uint(map_flags, BPF_F_NO_PREALLOC); __type(key, struct guard_kfunc_key); __type(value, __u64); PINNED } kfuncs SEC(".maps");

// What tenants hold: usage against their quotas, and who made which object.
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, GUARD_MAX_TENANTS); __type(key, __u32); __type(value, struct guard_usage); PINNED } usage SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, GUARD_MAX_OBJECTS); __uint(map_flags, BPF_F_NO_PREALLOC); __type(key, __u64); __type(value, struct guard_owner); PINNED } map_owners SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, GUARD_MAX_OBJECTS); __uint(map_flags, BPF_F_NO_PREALLOC); __type(key, __u64); __type(value, __u32); PINNED } prog_owners SEC(".maps");

// User space's record of each tenant (name, match, policy document), so a
// manager that restarts can take the guard over (Guard.open).
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, GUARD_MAX_TENANTS); __uint(map_flags, BPF_F_NO_PREALLOC); __type(key, __u32); __type(value, struct guard_record); PINNED } records SEC(".maps");

struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, GUARD_EVENTS_BYTES); PINNED } events SEC(".maps");
// [0] refusals, [1] events lost to a full ring, [2] tenant requests allowed.
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, GUARD_STATS); __type(key, __u32); __type(value, __u64); PINNED } stats SEC(".maps");

static __always_inline void bump(__u32 slot) {
  __u64 *v = bpf_map_lookup_elem(&stats, &slot);
  if (v) *v += 1;
}

static __always_inline __u32 userns_inum(struct user_namespace *ns) {
  return ns ? BPF_CORE_READ(ns, ns.inum) : 0;
}

static __always_inline __u32 lookup_u32(void *map, const void *key) {
  __u32 *v = bpf_map_lookup_elem(map, key);
  return v ? *v : 0;
}

// The deepest registered cgroup on the task's way to the root. A bpf_loop,
// not an unrolled loop: the verifier checks the step once.
struct cgroup_walk {
  void *ancestors; // &cgroup->ancestors[0]
  int level;
  __u32 tenant;
};

static long cgroup_step(__u64 i, void *arg) {
  struct cgroup_walk *w = arg;
  int at = w->level - (int)i;
  if (at < 0) return 1;
  struct cgroup *a = 0;
  if (bpf_probe_read_kernel(&a, sizeof(a), w->ancestors + at * sizeof(a)) || !a) return 0;
  __u64 id = BPF_CORE_READ(a, kn, id);
  w->tenant = lookup_u32(&by_cgroup, &id);
  return w->tenant ? 1 : 0;
}

static __always_inline __u32 tenant_of_cgroup(struct task_struct *task) {
  struct cgroup *cg = BPF_CORE_READ(task, cgroups, dfl_cgrp);
  if (!cg) return 0;
  struct cgroup_walk w = {
    .ancestors = (void *)cg + bpf_core_field_offset(struct cgroup, ancestors),
    .level = BPF_CORE_READ(cg, level),
  };
  bpf_loop(GUARD_MAX_CGROUP_DEPTH, cgroup_step, &w, 0);
  return w.tenant;
}

static __always_inline __u32 tenant_of(struct bpf_token *token) {
  __u32 t;
  if (token) {
    __u64 addr = (__u64)token;
    if ((t = lookup_u32(&tokens, &addr))) return t;
    __u32 inum = userns_inum(BPF_CORE_READ(token, userns));
    if ((t = lookup_u32(&by_userns, &inum))) return t;
  }
  struct task_struct *task = bpf_get_current_task_btf();
  __u32 inum = userns_inum(BPF_CORE_READ(task, cred, user_ns));
  if ((t = lookup_u32(&by_userns, &inum))) return t;
  return tenant_of_cgroup(task);
}

static __always_inline int has_bit(const __u64 *words, __u32 n, __u32 bit) {
  __u32 w = bit / 64;
  if (w >= n) return 0;
  return (words[w] >> (bit % 64)) & 1;
}

// Not inlined: its parameter puts struct guard_event in the BTF user space decodes events with.
static __noinline int refuse(struct guard_event *proto) {
  bump(GUARD_STAT_REFUSED);
  struct guard_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e) {
    bump(GUARD_STAT_LOST);
    return -EPERM;
  }
  __builtin_memcpy(e, proto, sizeof(*e));
  e->time_ns = bpf_ktime_get_boot_ns();
  e->pid = bpf_get_current_pid_tgid() >> 32;
  bpf_get_current_comm(e->comm, sizeof(e->comm));
  bpf_ringbuf_submit(e, 0);
  return -EPERM;
}

// The walk over a program's instructions (bpf_loop callback state).
struct walk {
  struct bpf_insn *insns;
  __u32 len;
  __u32 tenant;
  __u32 version;
  __u32 ncontexts;
  __u32 type;
  __u32 attach;
  __u32 btf_obj;
  __u32 btf_id;
  __u64 matched;           // contexts the program matches
  __u64 helpers[GUARD_HELPER_WORDS]; // their helpers, united
  // The first refusal: kind 0 while none.
  __u32 kind;
  __u32 id;
  __s32 insn;
};

static long check_insn(__u64 i, void *arg) {
  struct walk *w = arg;
  struct bpf_insn insn;
  if (i >= w->len) return 1;
  if (bpf_probe_read_kernel(&insn, sizeof(insn), w->insns + i)) {
    w->kind = GUARD_REFUSED_UNREADABLE;
    w->insn = i;
    return 1;
  }
  if (insn.code != (BPF_JMP | BPF_CALL)) return 0;
  if (insn.src_reg == 0) {
    if (insn.imm >= 0 && has_bit(w->helpers, GUARD_HELPER_WORDS, insn.imm)) return 0;
    w->kind = GUARD_REFUSED_HELPER;
  } else if (insn.src_reg == BPF_PSEUDO_KFUNC_CALL) {
    // A kfunc of a module's BTF (off: its fd_array slot) cannot be named here.
    if (insn.off != 0) {
      w->kind = GUARD_REFUSED_MODULE_KFUNC;
    } else {
      struct guard_kfunc_key k = { .tenant = w->tenant, .version = w->version, .btf_id = insn.imm };
      __u64 *mask = bpf_map_lookup_elem(&kfuncs, &k);
      if (mask && (*mask & w->matched)) return 0;
      w->kind = GUARD_REFUSED_KFUNC;
    }
  } else {
    return 0; // BPF_PSEUDO_CALL: a subprogram, walked as part of the same instructions
  }
  w->id = insn.imm;
  w->insn = i;
  return 1;
}

// Does context i of the tenant match the program? (bpf_loop step over the
// tenant's contexts: unite the helpers of those that do.)
static long context_step(__u64 i, void *arg) {
  struct walk *w = arg;
  if (i >= w->ncontexts) return 1;
  struct guard_context_key k = { .tenant = w->tenant, .version = w->version, .index = i };
  struct guard_context *c = bpf_map_lookup_elem(&contexts, &k);
  if (!c) return 0;
  if (!has_bit(&c->prog_types, 1, w->type)) return 0;
  if (!(c->flags & GUARD_CTX_ANY_ATTACH) && !has_bit(c->attach_types, 2, w->attach)) return 0;
  // struct_ops: the expected attach type is the member's index.
  if ((c->flags & GUARD_CTX_MEMBERS) && (w->type != BPF_PROG_TYPE_STRUCT_OPS || !has_bit(&c->members, 1, w->attach))) return 0;
  // Only programs that name their target at load (tracing, lsm, struct_ops,
  // ext) carry it; the others (kprobe, tracepoint) name it at attach time.
  if ((c->flags & GUARD_CTX_TARGETS) && w->btf_id) {
    struct guard_target_key t = { .tenant = w->tenant, .version = w->version, .index = i, .btf_obj = w->btf_obj, .btf_id = w->btf_id };
    if (!bpf_map_lookup_elem(&targets, &t)) return 0;
  }
  w->matched |= 1ULL << (i & 63);
  for (int j = 0; j < GUARD_HELPER_WORDS; j++) w->helpers[j] |= c->helpers[j];
  return 0;
}

SEC("lsm/bpf_prog_load")
int BPF_PROG(guard_prog_load, struct bpf_prog *prog, union bpf_attr *attr, struct bpf_token *token) {
  if (!token) token = BPF_CORE_READ(prog, aux, token);
  __u32 t = tenant_of(token);
  if (!t) return 0;
  struct guard_tenant *rules = bpf_map_lookup_elem(&tenants, &t);
  struct guard_event e = { .tenant = t, .insn = -1, .object = GUARD_OBJECT_PROG };
  __u32 type = BPF_CORE_READ(prog, type);
  __u32 attach = BPF_CORE_READ(prog, expected_attach_type);
  e.prog_type = type;
  e.attach_type = attach;
  e.attach_btf_id = BPF_CORE_READ(prog, aux, attach_btf_id);
  BPF_CORE_READ_STR_INTO(&e.name, prog, aux, name);
  // A tenant being replaced or removed has matches but no rules for a moment: refuse.
  if (!rules) {
    e.kind = GUARD_REFUSED_NO_RULES;
    return refuse(&e);
  }
  // As a token checks it (bpf_token_allow_prog_type): both masks.
  if (!has_bit(&rules->prog_types, 1, type)) {
    e.kind = GUARD_REFUSED_PROG_TYPE;
    return refuse(&e);
  }
  if (!has_bit(rules->attach_types, 2, attach)) {
    e.kind = GUARD_REFUSED_ATTACH_TYPE;
    return refuse(&e);
  }
  if (!(rules->flags & GUARD_TENANT_CHECK_PROGRAMS)) goto allowed;

  struct walk w = { .tenant = t, .version = rules->version, .ncontexts = rules->ncontexts, .type = type, .attach = attach, .btf_id = e.attach_btf_id };
  struct btf *btf = BPF_CORE_READ(prog, aux, attach_btf);
  if (btf) w.btf_obj = BPF_CORE_READ(btf, id);
  bpf_loop(GUARD_MAX_CONTEXTS, context_step, &w, 0);
  e.contexts = w.matched;
  if (!w.matched) {
    e.kind = GUARD_REFUSED_NO_CONTEXT;
    return refuse(&e);
  }
  w.insns = (void *)prog + bpf_core_field_offset(struct bpf_prog, insnsi);
  w.len = BPF_CORE_READ(prog, len);
  bpf_loop(w.len, check_insn, &w, 0);
  if (w.kind) {
    e.kind = w.kind;
    e.id = w.id;
    e.insn = w.insn;
    return refuse(&e);
  }
allowed:;
  __u64 key = (__u64)prog;
  bpf_map_update_elem(&prog_owners, &key, &t, BPF_ANY);
  bump(GUARD_STAT_ALLOWED);
  return 0;
}

SEC("lsm/bpf_prog_free")
int BPF_PROG(guard_prog_free, struct bpf_prog *prog) {
  __u64 key = (__u64)prog;
  bpf_map_delete_elem(&prog_owners, &key);
  return 0;
}

SEC("lsm/bpf_map_create")
int BPF_PROG(guard_map_create, struct bpf_map *map, union bpf_attr *attr, struct bpf_token *token) {
  __u32 t = tenant_of(token);
  if (!t) return 0;
  struct guard_event e = { .tenant = t, .insn = -1, .object = GUARD_OBJECT_MAP };
  __u32 type = BPF_CORE_READ(map, map_type);
  __u64 bytes = ((__u64)BPF_CORE_READ(map, key_size) + BPF_CORE_READ(map, value_size)) * BPF_CORE_READ(map, max_entries);
  e.id = type;
  e.value = bytes;
  BPF_CORE_READ_STR_INTO(&e.name, map, name);
  struct guard_tenant *rules = bpf_map_lookup_elem(&tenants, &t);
  if (!rules) {
    e.kind = GUARD_REFUSED_NO_RULES;
    return refuse(&e);
  }
  if (!has_bit(rules->map_types, 2, type)) {
    e.kind = GUARD_REFUSED_MAP_TYPE;
    return refuse(&e);
  }
  struct guard_usage *u = bpf_map_lookup_elem(&usage, &t);
  if (!u) {
    struct guard_usage zero = {};
    bpf_map_update_elem(&usage, &t, &zero, BPF_NOEXIST);
    u = bpf_map_lookup_elem(&usage, &t);
    if (!u) {
      e.kind = GUARD_REFUSED_NO_RULES;
      return refuse(&e);
    }
  }
  // Take first, then check, so two creates at once cannot both pass the last slot.
  __u64 maps = __sync_fetch_and_add(&u->maps, 1) + 1;
  __u64 total = __sync_fetch_and_add(&u->bytes, bytes) + bytes;
  if (total > rules->max_bytes || maps > rules->max_maps) {
    __sync_fetch_and_sub(&u->maps, 1);
    __sync_fetch_and_sub(&u->bytes, bytes);
    int over_bytes = total > rules->max_bytes;
    e.kind = over_bytes ? GUARD_REFUSED_MAP_BYTES : GUARD_REFUSED_MAP_COUNT;
    e.limit = over_bytes ? rules->max_bytes : rules->max_maps;
    e.used = over_bytes ? total - bytes : maps - 1;
    return refuse(&e);
  }
  __u64 key = (__u64)map;
  struct guard_owner o = { .tenant = t, .bytes = bytes };
  if (bpf_map_update_elem(&map_owners, &key, &o, BPF_ANY)) {
    // Untracked, it would never be given back: refuse rather than leak quota.
    __sync_fetch_and_sub(&u->maps, 1);
    __sync_fetch_and_sub(&u->bytes, bytes);
    e.kind = GUARD_REFUSED_FULL;
    return refuse(&e);
  }
  bump(GUARD_STAT_ALLOWED);
  return 0;
}

SEC("lsm/bpf_map_free")
int BPF_PROG(guard_map_free, struct bpf_map *map) {
  __u64 key = (__u64)map;
  struct guard_owner *o = bpf_map_lookup_elem(&map_owners, &key);
  if (!o) return 0;
  struct guard_usage *u = bpf_map_lookup_elem(&usage, &o->tenant);
  if (u) {
    __sync_fetch_and_sub(&u->maps, 1);
    __sync_fetch_and_sub(&u->bytes, o->bytes);
  }
  bpf_map_delete_elem(&map_owners, &key);
  return 0;
}

// A new fd for an existing map or program (OBJ_GET of a pin, GET_FD_BY_ID):
// refused when a tenant asks for another tenant's object.
static __always_inline int foreign(__u32 owner, __u32 object, const char *name) {
  if (!owner) return 0;
  __u32 t = tenant_of(0);
  if (!t || t == owner) return 0;
  struct guard_event e = { .tenant = t, .insn = -1, .kind = GUARD_REFUSED_FOREIGN, .object = object, .id = owner };
  bpf_probe_read_kernel_str(&e.name, sizeof(e.name), name);
  return refuse(&e);
}

SEC("lsm/bpf_map")
int BPF_PROG(guard_map, struct bpf_map *map, unsigned int fmode) {
  __u64 key = (__u64)map;
  struct guard_owner *o = bpf_map_lookup_elem(&map_owners, &key);
  return foreign(o ? o->tenant : 0, GUARD_OBJECT_MAP, map->name);
}

SEC("lsm/bpf_prog")
int BPF_PROG(guard_prog, struct bpf_prog *prog) {
  __u64 key = (__u64)prog;
  return foreign(lookup_u32(&prog_owners, &key), GUARD_OBJECT_PROG, BPF_CORE_READ(prog, aux)->name);
}

SEC("lsm/bpf_token_create")
int BPF_PROG(guard_token_create, struct bpf_token *token, union bpf_attr *attr, const struct path *path) {
  __u32 dev = BPF_CORE_READ(path, dentry, d_sb, s_dev);
  __u32 t = lookup_u32(&by_bpffs, &dev);
  if (!t) return 0;
  // The token's user namespace owns the tenant's bpffs: it is the tenant's
  // too (unless another tenant claimed it). Requests that carry no token
  // (opening objects) are known by it, and so are program loads where the
  // bpf_prog_load hook does not find the token (seen on Debian's 6.12).
  __u32 inum = userns_inum(BPF_CORE_READ(token, userns));
  if (inum && inum != INIT_USER_NS_INUM) bpf_map_update_elem(&by_userns, &inum, &t, BPF_NOEXIST);
  __u64 addr = (__u64)token;
  if (!bpf_map_update_elem(&tokens, &addr, &t, BPF_ANY)) return 0;
  // An untracked token would not be known as the tenant's: no token then.
  struct guard_event e = { .tenant = t, .insn = -1, .kind = GUARD_REFUSED_FULL, .object = GUARD_OBJECT_TOKEN };
  return refuse(&e);
}

SEC("lsm/bpf_token_free")
int BPF_PROG(guard_token_free, struct bpf_token *token) {
  __u64 addr = (__u64)token;
  bpf_map_delete_elem(&tokens, &addr);
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
