// `!reference [job, key, ...]`: GitLab resolves these on the configuration
// with its includes merged and before `extends`, so a reference sees what
// was written, not what a job inherits. A reference to a value holding
// references is resolved too, up to GitLab's ten levels.
import {
  CiConfigError, CiReference, isCiMap, keyPosition, newMap, positionOf, setKeyPosition, setPosition,
  type CiMap, type CiValue,
} from './yaml-source.mts';

const maxDepth = 10;

export function resolveReferences(root: CiMap): CiMap {
  const resolve = (value: CiValue, chain: readonly string[]): CiValue => {
    if (value instanceof CiReference) {
      const name = value.toString();
      if (chain.includes(name)) throw new CiConfigError(`${name} is part of a circular chain: ${[...chain, name].join(' -> ')}`, value.at);
      if (chain.length >= maxDepth) throw new CiConfigError(`${name}: references nested deeper than ${maxDepth} levels`, value.at);
      return resolve(lookup(root, value), [...chain, name]);
    }
    if (Array.isArray(value)) return setPosition(value.map((item) => resolve(item, chain)), positionOf(value));
    if (isCiMap(value)) {
      const map = setPosition(newMap(), positionOf(value));
      for (const [key, item] of Object.entries(value)) {
        map[key] = resolve(item, chain);
        setKeyPosition(map, key, keyPosition(value, key));
      }
      return map;
    }
    return value;
  };
  return resolve(root, []) as CiMap;
}

function lookup(root: CiMap, reference: CiReference): CiValue {
  let value: CiValue | undefined = root;
  for (const key of reference.path) {
    value = isCiMap(value) && Object.hasOwn(value, key) ? value[key] : undefined;
    if (value === undefined) break;
  }
  if (value === undefined) throw new CiConfigError(`${reference.toString()} could not be found`, reference.at);
  return value;
}
