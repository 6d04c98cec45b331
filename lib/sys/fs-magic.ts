// Which filesystem a path is on, by statfs's f_type (include/uapi/linux/magic.h).
import { statfsSync } from 'node:fs'

export const BPF_FS_MAGIC = 0xcafe4a11
export const CGROUP2_SUPER_MAGIC = 0x63677270

/** Whether `path` is on a filesystem of type `magic`. Errors: statfs's (ENOENT...). */
export function onFilesystem(path: string, magic: number): boolean {
  return statfsSync(path).type === magic
}
