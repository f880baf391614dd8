// The one host:port parser and formatter (listen addresses, ng upstreams, metrics servers):
// `1.2.3.4:22222`, `[::1]:22222`, `localhost:22222`; IPv6 literals always in brackets.

export interface HostPort { host: string; port: number }

const hostPort = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/;

/** {host, port}, or undefined when malformed. Port 0 (ephemeral) is allowed: embedding, tests. */
export function parseHostPort(s: string): HostPort | undefined {
  const m = hostPort.exec(s.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: m[1] ?? m[2]!, port };
}

/** `PORT` alone means `defaultHost:PORT`. */
export function parseListen(s: string, defaultHost = '127.0.0.1'): HostPort | undefined {
  const t = s.trim();
  if (/^\d{1,5}$/.test(t)) return Number(t) <= 65535 ? { host: defaultHost, port: Number(t) } : undefined;
  return parseHostPort(t);
}

export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
