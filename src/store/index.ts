// src/store: the content-addressed image store, its catalog, rendered trees, locks and gc.
export * from './atomic.js';
export * from './catalog.js';
export * from './gc.js';
export * from './layout.js';
export * from './lock.js';
export * from './store.js';
export * from './trees.js';
