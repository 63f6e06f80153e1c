// A local job's services: for prepareJob, as gitlab-runner would hand them
// over. It expands each service's name and alias with the job's variables
// (Build.expandContainerOptions), not its entrypoint: or command:, which
// reach the service as written; a service's variables are expanded with the
// job's and its own (the Docker executor's getServiceVariables). Every
// variable of a local run is the developer's own: all of them count as the
// public ones CI gives services.
import type { ServiceDefinition } from '../ci/model.mts';
import { expandText, expandVariables, mergeVariables, type Variable } from '../ci/variables.mts';
import { JobError } from '../errors.mts';
import { isDebugServices, serviceSpecOf, type JobServices } from '../services/spec.mts';

export function localJobServices(services: readonly ServiceDefinition[], variables: ReadonlyMap<string, string>): JobServices {
  const lookup = (name: string) => variables.get(name);
  // Already expanded: taken as they are under the service's own.
  const jobLayer = new Map<string, Variable>([...variables].map(([name, value]) => [name, { value, raw: true }]));
  return {
    services: services.map((service) => {
      const image = expandText(service.name, lookup);
      if (image === '') throw new JobError(`service ${service.name}: its image name is empty once variables are expanded`);
      const own = expandVariables(mergeVariables(jobLayer, service.variables));
      return serviceSpecOf({
        image,
        alias: service.alias === undefined ? undefined : expandText(service.alias, lookup),
        entrypoint: service.entrypoint,
        command: service.command,
        variables: [...service.variables.keys()].map((name) => [name, own.get(name) ?? '']),
        pullPolicies: service.pullPolicy,
      });
    }),
    jobVariables: [...variables],
    debug: isDebugServices(variables.get('CI_DEBUG_SERVICES')),
  };
}
