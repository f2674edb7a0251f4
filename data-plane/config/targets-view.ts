/**
 * A snapshot's `targets` (route id → RouteTarget) as a read-only view of its route builds rather than a map of its
 * own: a snapshot build then fills one map of all routes fewer (about 0.6 ms at 10,000 routes, bench/route-scale.ts).
 */
import type { RouteTarget } from '../routing/route-target.ts';
import type { RouteBuild } from './snapshots.ts';

/** `targets` as a view of `routeBuilds`: one map fewer to fill per build (about 0.6 ms at 10,000 routes). */
export class TargetsById implements ReadonlyMap<string, RouteTarget> {
  readonly #builds: ReadonlyMap<string, RouteBuild>;

  constructor(builds: ReadonlyMap<string, RouteBuild>) {
    this.#builds = builds;
  }

  get size(): number {
    return this.#builds.size;
  }

  get(id: string): RouteTarget | undefined {
    return this.#builds.get(id)?.entry.target;
  }

  has(id: string): boolean {
    return this.#builds.has(id);
  }

  forEach(callback: (target: RouteTarget, id: string, map: ReadonlyMap<string, RouteTarget>) => void, thisArg?: unknown): void {
    for (const [id, build] of this.#builds) callback.call(thisArg, build.entry.target, id, this);
  }

  *entries(): MapIterator<[string, RouteTarget]> {
    for (const [id, build] of this.#builds) yield [id, build.entry.target];
  }

  keys(): MapIterator<string> {
    return this.#builds.keys();
  }

  *values(): MapIterator<RouteTarget> {
    for (const build of this.#builds.values()) yield build.entry.target;
  }

  [Symbol.iterator](): MapIterator<[string, RouteTarget]> {
    return this.entries();
  }
}
