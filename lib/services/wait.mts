// Before the first stage, prepare waits until each service accepts TCP
// connections on its ports, as the Docker executor's health check does, up
// to services_timeout. A service that does not come up gets a warning with
// its last log lines, and the job goes on.
import { readFileSync } from 'node:fs';
import { run } from '../exec.mts';
import { log } from '../log.mts';
import { isNspawnNoise } from '../nspawn.mts';
import { serviceLogPath, type ServiceRecord } from './machines.mts';

/**
 * One bash in the pod's network namespace (and no other namespace of the
 * pod) tries each port on loopback until it connects; it prints the ports
 * that never did, or "exited" once the service's machine is gone (its PID 1,
 * seen from the host), so a service that died does not hold prepare for the
 * whole timeout. bash's /dev/tcp needs no tool in the service's image.
 */
const probeScript = `deadline=$((SECONDS + $1)); leader=$2; shift 2
for port; do
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    kill -0 "$leader" 2>/dev/null || { echo exited; exit; }
    [ "$SECONDS" -lt "$deadline" ] || { echo "$port"; continue 2; }
    sleep 0.05
  done
done`;

export function buildPortProbeArgs(netns: string, ports: readonly number[], timeoutSeconds: number, leaderPid: number): string[] {
  return ['nsenter', `--net=${netns}`, '--', 'bash', '-c', probeScript, 'probe', String(Math.max(1, Math.ceil(timeoutSeconds))), String(leaderPid),
    ...ports.map(String)];
}

/** The ports of a service that never accepted a connection within the timeout, or 'exited'. */
export async function portsNotListening(netns: string, service: ServiceRecord, timeoutSeconds: number): Promise<number[] | 'exited'> {
  if (!service.ports.length || !service.leaderPid) return [];
  const result = await run(buildPortProbeArgs(netns, service.ports, timeoutSeconds, service.leaderPid));
  const lines = result.stdout.split('\n').filter(Boolean);
  return lines.includes('exited') ? 'exited' : lines.map(Number);
}

export function lastLogLines(service: ServiceRecord, count = 50): string[] {
  try {
    return readFileSync(serviceLogPath(service.dir), 'utf8').replace(/\n$/, '').split('\n').filter((line) => !isNspawnNoise(line)).slice(-count);
  } catch {
    return [];
  }
}

/** The job log's warning for a service that did not come up, in the Docker executor's words. */
export function serviceWarning(service: ServiceRecord, why: string): string {
  const lines = lastLogLines(service);
  return [
    `*** WARNING: Service ${service.image} probably didn't start properly.`,
    '',
    `Health check error: ${why}`,
    '',
    'Service container logs:',
    ...(lines.length ? lines.map((line) => `${service.hostNames[0] ?? service.machine}: ${line}`) : ['(none)']),
    '',
    '*********',
  ].join('\n');
}

/**
 * Waits for every service at once; warns for each that did not start, did
 * not listen, or has already exited.
 */
export async function awaitServices(netns: string, services: readonly ServiceRecord[], timeoutSeconds: number,
  isRunning: (service: ServiceRecord) => Promise<boolean>): Promise<void> {
  await Promise.all(services.map(async (service) => {
    if (service.failed) {
      log.warn(serviceWarning(service, service.failed));
      return;
    }
    const silent = await portsNotListening(netns, service, timeoutSeconds);
    if (silent === 'exited') {
      log.warn(serviceWarning(service, 'its command exited before it listened'));
    } else if (silent.length) {
      log.warn(serviceWarning(service, `nothing listens on port ${silent.join(', ')} after ${timeoutSeconds} s (services_timeout)`));
    } else if (!(await isRunning(service))) {
      log.warn(serviceWarning(service, 'its command has already exited'));
    } else if (service.ports.length) {
      log.verbose(`service ${service.image} listens on ${service.ports.join(', ')}`);
    }
  }));
}
