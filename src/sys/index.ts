// src/sys: the FFI syscall layer. Import from here; `libcSyscalls` is the one real implementation.
export * from './types.js';
export { libcSyscalls } from './libc.js';
