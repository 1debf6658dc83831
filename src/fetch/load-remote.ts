// The one door to remote fetching (remote.ts, and undici, htmlparser2 and openpgp behind it):
// imported on first need, so `tspod run` of a stored image never loads them, and remembered, so
// the end of a fetch knows whether there are HTTP connections to close.
let loaded: Promise<typeof import('./remote.js')> | undefined;

export function loadRemote(): Promise<typeof import('./remote.js')> {
  loaded ??= import('./remote.js');
  return loaded;
}

/** Closes the shared HTTP agents (idle keep-alive connections) if remote fetching was loaded. */
export async function closeRemoteConnections(): Promise<void> {
  if (loaded === undefined) return;
  await (await loaded).closeAgents();
}
