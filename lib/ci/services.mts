// A job's `services:` as GitLab accepts it (Gitlab::Ci::Config::Entry::Services,
// Service and Imageable): a list whose items are an image name or a mapping
// with name:. Nothing is expanded here; gitlab-runner expands the name and
// the alias with the job's variables when the job runs (Build.expandContainerOptions).
import type { ServiceDefinition } from './model.mts';
import { parseVariables } from './variables.mts';
import { CiConfigError, isCiMap, keyPosition, positionOf, type CiMap, type CiValue, type Position } from './yaml-source.mts';

/**
 * Keys of a service mapping. `docker:` (platform, user) and `kubernetes:`
 * (user) are options of those executors: a machine has no use for them, as
 * for image:. `ports:` GitLab refuses outside the Web IDE's terminal.
 */
const serviceKeys = ['name', 'alias', 'entrypoint', 'command', 'variables', 'pull_policy', 'docker', 'kubernetes'];
const pullPolicies = ['always', 'never', 'if-not-present'];

export function parseServices(value: CiValue | undefined, job: string, at: Position | undefined): ServiceDefinition[] {
  if (value === undefined || value === null) return [];
  const where = `job ${job}: services`;
  if (!Array.isArray(value)) throw new CiConfigError(`${where} must be a list of images or mappings with name:`, positionOf(value) ?? at);
  return value.map((item) => parseService(item, where, positionOf(item) ?? positionOf(value) ?? at));
}

function parseService(item: CiValue, where: string, at: Position | undefined): ServiceDefinition {
  if (typeof item === 'string' && item !== '') return { name: item, variables: new Map(), at };
  if (!isCiMap(item)) throw new CiConfigError(`${where}: each service is an image name or a mapping with name:`, at);
  for (const key of Object.keys(item)) {
    if (!serviceKeys.includes(key)) throw new CiConfigError(`${where}: unknown key ${key}`, keyPosition(item, key), `a service takes ${serviceKeys.join(', ')}`);
  }
  if (typeof item.name !== 'string' || item.name === '') throw new CiConfigError(`${where}: a service needs name: (its image)`, keyPosition(item, 'name') ?? at);
  const name = item.name;
  const service: ServiceDefinition = {
    name,
    variables: parseVariables(item.variables, keyPosition(item, 'variables'), `${where}: ${name}: variables`),
    at,
  };
  if (item.alias !== undefined && item.alias !== null) {
    if (typeof item.alias !== 'string') throw new CiConfigError(`${where}: ${name}: alias must be a string`, keyPosition(item, 'alias'));
    service.alias = item.alias;
  }
  const entrypoint = stringArray(item, 'entrypoint', `${where}: ${name}`);
  if (entrypoint) service.entrypoint = entrypoint;
  const command = stringArray(item, 'command', `${where}: ${name}`);
  if (command) service.command = command;
  const pullPolicy = parsePullPolicy(item, `${where}: ${name}`);
  if (pullPolicy) service.pullPolicy = pullPolicy;
  return service;
}

/** entrypoint: and command: are lists of strings (GitLab's array_of_strings): a bare string is refused. */
function stringArray(item: CiMap, key: string, where: string): string[] | undefined {
  const value = item[key];
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || !value.every((word) => typeof word === 'string')) {
    throw new CiConfigError(`${where}: ${key} must be a list of strings`, positionOf(value) ?? keyPosition(item, key));
  }
  return value as string[];
}

/** pull_policy: one policy or a list of them (GitLab's Entry::PullPolicy). */
function parsePullPolicy(item: CiMap, where: string): string[] | undefined {
  const value = item.pull_policy;
  if (value === undefined || value === null) return undefined;
  const list = Array.isArray(value) ? value : [value];
  if (!list.every((policy) => typeof policy === 'string' && pullPolicies.includes(policy))) {
    throw new CiConfigError(`${where}: pull_policy must be ${pullPolicies.join(', ')} or a list of them`,
      positionOf(value) ?? keyPosition(item, 'pull_policy'));
  }
  return list.length ? list as string[] : undefined;
}
