// How a command names a kernel object: wherever bpfkit takes a program, map,
// link or BTF object, the argument may be
//   - its ID: decimal digits ('42');
//   - a pinned path on a bpffs: anything with a '/' ('/sys/fs/bpf/x', './x');
//     programs, maps and links (BTF cannot be pinned);
//   - its name: the object name the loader gave it (the kernel keeps 15
//     characters; a program's whole name is read from its BTF, and without
//     one a longer argument matches on its first 15);
//     for BTF the name in its info ('vmlinux', a module's); a link has no
//     name of its own and is named by its program's name.
// A name no object has, or a name several objects share, is an error (exit 1)
// that says so, listing the IDs to choose from.
import { programFullName, type BtfCache } from '../prog/full-name.js'
import { progInfoByFd, type Fd } from '../sys/index.js'
import { infoOf, kindNoun, openById, openPinned, walkInfo, walkOpen, type InfoOf, type ObjectKind } from '../sys/open-object.js'
import { withProgress } from './progress.js'

export type { ObjectKind } from '../sys/open-object.js'

// BPF_OBJ_NAME_LEN is 16 with the terminating NUL.
const KERNEL_NAME_LEN = 15

/** A name that matched nothing, or several objects: exit 1 (main prints the message). */
export class NameError extends Error {
  constructor(message: string, readonly ids: readonly number[] = []) {
    super(message)
  }
}

export type NameForm = { by: 'id'; id: number } | { by: 'pin'; path: string } | { by: 'name'; name: string }

/** Which of the three forms `arg` is (see the header). Throws NameError on an empty argument. */
export function nameForm(kind: ObjectKind, arg: string): NameForm {
  if (arg === '') throw new NameError(`${kind}: an empty name names nothing`)
  if (/^\d+$/.test(arg)) {
    const id = Number(arg)
    if (!Number.isSafeInteger(id) || id > 0xffffffff) throw new NameError(`${kind} ${arg}: no ${kindNoun(kind)} has that ID (IDs are 32-bit)`)
    return { by: 'id', id }
  }
  if (arg.includes('/')) {
    if (kind === 'btf') throw new NameError(`btf ${arg}: BTF objects cannot be pinned; name one by ID or name`)
    return { by: 'pin', path: arg }
  }
  return { by: 'name', name: arg }
}

/**
 * Whether an object the kernel calls `kernelName` is the one called `want`.
 * `fullName`: a program's whole name from its BTF, where the kernel's may be
 * cut short; without it, a longer `want` is compared on its first 15
 * characters.
 */
export function nameMatches(kernelName: string, want: string, fullName = kernelName): boolean {
  if (want === kernelName || want === fullName) return true
  return fullName === kernelName && want.length > KERNEL_NAME_LEN && kernelName === want.slice(0, KERNEL_NAME_LEN)
}

function namesOf(kind: ObjectKind): string {
  return { prog: 'programs', map: 'maps', link: 'links', btf: 'BTF objects' }[kind]
}

/** The IDs of the objects of `kind` that `name` names, walking every loaded one (progress on a terminal). */
export function idsNamed(kind: ObjectKind, name: string): number[] {
  if (kind === 'link') {
    const progs = new Set(idsNamed('prog', name))
    if (progs.size === 0) return []
    return [...withProgress('walking links', walkInfo('link'))].filter((l) => progs.has(l.progId)).map((l) => l.id)
  }
  if (kind === 'prog' && name.length > KERNEL_NAME_LEN) {
    // Only a long name asks for programs' whole names (their BTF is read for it).
    const btfs: BtfCache = new Map()
    const named = walkOpen('prog', (fd) => {
      const info = progInfoByFd(fd)
      return { id: info.id, kernel: info.name, full: programFullName(fd, info, btfs) }
    })
    return [...withProgress('walking programs', named)].filter((p) => nameMatches(p.kernel, name, p.full)).map((p) => p.id)
  }
  const found: number[] = []
  for (const info of withProgress(`walking ${namesOf(kind)}`, walkInfo(kind) as Generator<InfoOf['prog' | 'map' | 'btf']>)) {
    if (nameMatches(info.name, name)) found.push(info.id)
  }
  return found
}

/** The single ID `name` names: NameError when none or several. */
function onlyId(kind: ObjectKind, name: string): number {
  const ids = idsNamed(kind, name)
  const what = kind === 'link' ? `whose program is named '${name}'` : `named '${name}'`
  if (ids.length === 0) throw new NameError(`${kind} ${name}: no ${kindNoun(kind)} ${what} is loaded`)
  if (ids.length > 1) throw new NameError(`${kind} ${name}: ${ids.length} ${namesOf(kind)} ${what}: IDs ${ids.join(', ')}; name one by ID`, ids)
  return ids[0]
}

export interface Resolved {
  /** An owned fd of the object: the caller closes it. */
  fd: Fd
  id: number
}

/**
 * Opens the object of `kind` that `arg` names (an ID, a pinned path or a
 * name). NameError (exit 1) when it names nothing or several objects; a
 * TypeError when a pin holds another kind; BpfError for EPERM and the like.
 */
export function openNamed(kind: ObjectKind, arg: string): Resolved {
  const form = nameForm(kind, arg)
  let fd: Fd
  switch (form.by) {
    case 'id':
      fd = openOrExplain(kind, arg, () => openById(kind, form.id))
      break
    case 'pin':
      fd = openOrExplain(kind, arg, () => openPinned(kind, form.path))
      break
    case 'name':
      // Freed between the walk and the open: said as for an unknown ID.
      fd = openOrExplain(kind, arg, () => openById(kind, onlyId(kind, form.name)))
      break
  }
  try {
    return { fd, id: infoOf(kind, fd.fd).id }
  } catch (e) {
    fd.close()
    throw e
  }
}

/** `use(fd, id)` on the object `arg` names (see openNamed), closing it afterwards. */
export function withNamed<T>(kind: ObjectKind, arg: string, use: (fd: number, id: number) => T): T {
  const { fd, id } = openNamed(kind, arg)
  try {
    return use(fd.fd, id)
  } finally {
    fd.close()
  }
}

/** The ID of the object `arg` names, without keeping it open. */
export function resolveId(kind: ObjectKind, arg: string): number {
  const form = nameForm(kind, arg)
  if (form.by === 'name') return onlyId(kind, form.name)
  const { fd, id } = openNamed(kind, arg)
  fd.close()
  return id
}

function openOrExplain(kind: ObjectKind, arg: string, open: () => Fd): Fd {
  try {
    return open()
  } catch (e) {
    const code = (e as { code?: string }).code
    if (code === 'ENOENT') {
      const form = nameForm(kind, arg)
      throw new NameError(form.by === 'pin'
        ? `${kind} ${arg}: nothing is pinned there`
        : `${kind} ${arg}: no ${kindNoun(kind)} has ${form.by === 'id' ? 'that ID' : 'that name any more'}`)
    }
    if (e instanceof TypeError) throw new NameError(`${kind} ${arg}: ${e.message}`)
    throw e
  }
}
