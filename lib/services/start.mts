// A job's services in prepare: the pod first, then every service machine
// beside the job's own, then the wait for their ports. Loaded only for jobs
// with services.
import type { HostMode } from '../host/host.mts';
import type { JobRecord } from '../job/record.mts';
import { writeAll } from '../log.mts';
import type { Settings } from '../settings.mts';
import { streamServiceLogs } from './logs.mts';
import { serviceAsMachine, serviceRecordOf, startService, type PlannedService, type ServiceRecord, type ServiceStart } from './machines.mts';
import { buildHostsFile, createPod } from './pod.mts';
import { awaitServices as awaitPorts } from './wait.mts';

// What the job's own machine binds of its pod (prepare starts that machine).
export { podBinds } from './pod.mts';

/** Applies a change to the latest job record, writes it and returns it. */
export type RecordUpdate = (change: (record: JobRecord) => JobRecord) => JobRecord;

const latest = (record: JobRecord) => record;

/**
 * The network namespace the job's machine and its services share, with an
 * /etc/hosts naming every service, and where the host has them, the slice
 * that holds the job's limits for all of its machines. The service records
 * go in first, so cleanup finds whatever starts.
 */
export async function makePod(settings: Settings, host: HostMode, dir: string, update: RecordUpdate, planned: readonly PlannedService[],
  debug: boolean): Promise<void> {
  const job = update(latest);
  const services = planned.map((service, index) => serviceRecordOf(service, job, dir, index));
  const hosts = buildHostsFile([job.machine, ...services.map((service) => service.machine)], services.flatMap((service) => service.hostNames));
  update((record) => ({ ...record, services, ...(debug ? { debugServices: true } : {}) }));
  const making = host.makeJobSlice?.(job.machine, settings.limits);
  // Both settle before a failure goes up: cleanup must not race the slice's making.
  const pod = await createPod(dir, settings.network, hosts).finally(() => making?.catch(() => undefined));
  const slice = await making;
  update((record) => ({ ...record, pod, ...(slice ? { slice } : {}) }));
}

/** Starts every service machine at once; one that fails to start is in its record (failed), not thrown. */
export async function startServices(start: ServiceStart, planned: readonly PlannedService[], update: RecordUpdate): Promise<ServiceRecord[]> {
  const job = update(latest);
  const replace = (service: ServiceRecord): void => {
    update((record) => ({ ...record, services: (record.services ?? []).map((item) => (item.machine === service.machine ? service : item)) }));
  };
  const context = { ...start, pod: job.pod!, jobRecord: job, update: replace };
  return Promise.all((job.services ?? []).map(async (service, index) => {
    const started = await startService(context, planned[index]!, service);
    replace(started);
    return started;
  }));
}

/** Waits for the services' ports; with CI_DEBUG_SERVICES, their output so far goes to the job log. */
export async function awaitServices(host: HostMode, job: JobRecord, services: readonly ServiceRecord[], timeoutSeconds: number): Promise<void> {
  await awaitPorts(job.pod!.netns, services, timeoutSeconds, async (service) => (await host.leaderOf(serviceAsMachine(job, service))) !== undefined);
  if (job.debugServices) streamServiceLogs(services, (text) => writeAll(2, text));
}
