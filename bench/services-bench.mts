// prepare with one service against prepare without, on the busybox image
// (issue 14): the difference should be one machine start (the raw
// systemd-nspawn floor of the same run) plus the service's own time to
// listen, which busybox httpd makes nil.
import { writeFileSync } from 'node:fs';
import { median, timed } from './timing.mts';

export interface ServicesBench {
  executable: string;
  root: string;
  runs: number;
  nspawnFloor: number;
}


export function measureServices(bench: ServicesBench): string[] {
  const jobs = {
    plain: { image: { name: 'busybox' }, variables: [] },
    service: {
      image: { name: 'busybox' }, variables: [],
      services: [{ name: 'busybox', alias: 'web', command: ['httpd', '-f', '-p', '8080', '-h', '/etc'], ports: [{ number: 8080, protocol: 'tcp' }] }],
    },
  };
  const times = { plain: [] as number[], service: [] as number[] };
  for (let round = 0; round < bench.runs; round++) {
    const order = round % 2 ? (['service', 'plain'] as const) : (['plain', 'service'] as const);
    for (const kind of order) {
      const file = `${bench.root}/.bench-${kind}.json`;
      writeFileSync(file, JSON.stringify(jobs[kind]));
      const env = { ...process.env, CUSTOM_ENV_CI_JOB_ID: `svc-${kind}-${round}`, JOB_RESPONSE_FILE: file };
      times[kind].push(timed([bench.executable, '--root', bench.root, 'prepare'], env));
      timed([bench.executable, '--root', bench.root, 'cleanup'], env);
    }
  }
  const plain = median(times.plain);
  const service = median(times.service);
  const extra = service - plain;
  return [
    `services (issue 14), busybox image with one busybox httpd service, overlay, medians of ${bench.runs}, alternating:`,
    `  prepare without services ${plain.toFixed(1)} ms   with one service ${service.toFixed(1)} ms   difference ${extra.toFixed(1)} ms`,
    `  target: difference <= one machine start (systemd-nspawn true ${bench.nspawnFloor.toFixed(1)} ms) + the service's time to listen (~0): ${extra <= bench.nspawnFloor ? 'met' : 'MISS'}`,
  ];
}
