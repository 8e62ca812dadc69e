/**
 * Sets `key` in `map`, first forgetting the oldest entry when the map holds `max` already: the caches
 * of what a token was found to be (admin, its hash, its JWT grant), which callers may fill at will.
 */
export function setBounded<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  if (map.size >= max) map.delete(map.keys().next().value as K);
  map.set(key, value);
}
