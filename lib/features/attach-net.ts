// (filled in by the attach families of issue 14)
export {}
