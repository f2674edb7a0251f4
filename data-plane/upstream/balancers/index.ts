/**
 * The balancer for an upstream's `type`, built over one priority group's nodes (see types.ts for the contract).
 * One file per APISIX type: roundrobin.ts, least-conn.ts, chash.ts, ewma.ts.
 */
import { ConsistentHashBalancer } from './chash.ts';
import { EwmaBalancer } from './ewma.ts';
import { LeastConnBalancer } from './least-conn.ts';
import { RoundRobinBalancer } from './roundrobin.ts';
import type { Balancer, BalancerNode, BalancerType } from './types.ts';

export type { Balancer, BalancerNode, BalancerType } from './types.ts';

export function createBalancer(type: BalancerType, nodes: readonly BalancerNode[]): Balancer {
  switch (type) {
    case 'roundrobin':
      return new RoundRobinBalancer(nodes);
    case 'least_conn':
      return new LeastConnBalancer(nodes);
    case 'chash':
      return new ConsistentHashBalancer(nodes);
    case 'ewma':
      return new EwmaBalancer(nodes);
  }
}
