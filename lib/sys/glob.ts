// Shell-style globs ('*' any run, '?' one character) as anchored regular
// expressions: kernel function patterns (kprobe.multi), binary symbol
// patterns (uprobe.multi) and policy attach targets all read them alike.

/** `glob` as a RegExp matching the whole name; every other character stands for itself. */
export function globPattern(glob: string): RegExp {
  return new RegExp(`^${glob.replace(/[.+^${}()|[\]\\/-]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`)
}
