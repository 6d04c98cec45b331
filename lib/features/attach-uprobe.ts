// (filled in by issue 14: uprobes)
export {}
