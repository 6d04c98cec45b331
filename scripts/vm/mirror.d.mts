// Types for mirror.mjs, so test/unit/vm-mirror.test.ts is type-checked.
export interface SourcesFile { path: string; text: string }
export interface SourcesEntry { types: string[]; uris: string[]; suites: string[]; components: string[]; signedBy?: string; file: string }
export interface Mirror { uri: string; signedBy?: string; from: string }
export const MIRROR_ENV: 'BPFKIT_VM_MIRROR'
export function parseSources(files: SourcesFile[]): SourcesEntry[]
export function debianArchive(entries: SourcesEntry[]): { uri: string; signedBy?: string; file: string } | undefined
export function readSystemSources(etc?: string): SourcesFile[]
export function chooseMirror(env?: Record<string, string | undefined>, files?: SourcesFile[]): Mirror
