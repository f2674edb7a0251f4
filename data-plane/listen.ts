/** Binds a server (gRPC listener or status port) and resolves with the port it got (port 0 picks a free one). */
import type { ListenAddress } from '../shared/config.ts';

interface Listenable {
  listen(port: number, host: string, callback: () => void): unknown;
  address(): string | { port: number } | null;
  once(event: 'error', listener: (err: Error) => void): unknown;
  off(event: 'error', listener: (err: Error) => void): unknown;
}

export function listenOn(server: Listenable, address: ListenAddress): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.ip, () => {
      server.off('error', reject);
      const bound = server.address();
      resolve(bound !== null && typeof bound === 'object' ? bound.port : address.port);
    });
  });
}
