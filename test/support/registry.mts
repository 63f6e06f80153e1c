// A real registry on loopback: Debian's docker-registry (the distribution
// registry) on 127.0.0.1 at a free port, with a storage directory of its own,
// plain http, optionally behind htpasswd authentication. Its access log tells
// the tests how often a blob was fetched.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';

export interface RegistryUser {
  user: string;
  password: string;
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

export class Registry {
  /** host:port, as image references name it. */
  readonly host: string;
  readonly dir: string;
  readonly user: RegistryUser | undefined;
  private readonly child: ChildProcess;

  private constructor(host: string, dir: string, child: ChildProcess, user: RegistryUser | undefined) {
    this.host = host;
    this.dir = dir;
    this.child = child;
    this.user = user;
  }

  static async start(user?: RegistryUser): Promise<Registry> {
    const dir = mkdtempSync(`${tmpdir()}/nsr-registry-`);
    const port = await freePort();
    const auth = user
      ? `auth:\n  htpasswd:\n    realm: nspawn-runner-tests\n    path: ${dir}/htpasswd\n`
      : '';
    if (user) {
      // bcrypt, the only hash the registry's htpasswd accepts.
      writeFileSync(`${dir}/htpasswd`, execFileSync('htpasswd', ['-Bbn', user.user, user.password], { encoding: 'utf8' }));
    }
    writeFileSync(`${dir}/config.yml`, [
      'version: 0.1',
      'log:',
      '  level: warn',
      '  accesslog:',
      '    disabled: false',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${dir}/data`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      auth,
    ].join('\n'));
    const child = spawn('docker-registry', ['serve', `${dir}/config.yml`], { stdio: ['ignore', 'pipe', 'pipe'] });
    // The access log goes to stdout, errors to stderr.
    let log = '';
    const record = (text: string): void => {
      log += text;
      writeFileSync(`${dir}/access.log`, log);
    };
    child.stdout!.setEncoding('utf8').on('data', record);
    child.stderr!.setEncoding('utf8').on('data', record);
    const registry = new Registry(`127.0.0.1:${port}`, dir, child, user);
    for (let attempt = 0; ; attempt++) {
      try {
        const response = await fetch(`http://${registry.host}/v2/`);
        if (response.status === 200 || response.status === 401) break;
      } catch {
        // not listening yet
      }
      if (attempt > 200 || child.exitCode !== null) throw new Error(`docker-registry did not start: ${log}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    return registry;
  }

  /** A DOCKER_AUTH_CONFIG / config.json document for this registry. */
  authConfig(user: RegistryUser | undefined = this.user): string {
    if (!user) return '{"auths":{}}';
    return JSON.stringify({ auths: { [this.host]: { auth: Buffer.from(`${user.user}:${user.password}`).toString('base64') } } });
  }

  /** How many times the registry served the blob (a successful GET). */
  blobFetches(digest: string): number {
    let text = '';
    try {
      text = readFileSync(`${this.dir}/access.log`, 'utf8');
    } catch {
      return 0;
    }
    return text.split('\n').filter((line) => line.includes(`"GET /v2/`) && line.includes(`/blobs/${digest} `) && / 200 /.test(line)).length;
  }

  /** The file the registry stores a blob in (to corrupt it). */
  blobFile(digest: string): string {
    const hex = digest.slice('sha256:'.length);
    return `${this.dir}/data/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`;
  }

  async close(): Promise<void> {
    if (this.child.exitCode === null) {
      this.child.kill('SIGTERM');
      await once(this.child, 'close');
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
