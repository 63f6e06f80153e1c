// A real git repository served over git:// on 127.0.0.1, so a job's
// get_sources runs the ordinary clone/fetch inside the machine (machines on a
// direct host share the host's network). Each connection is handed to
// `git daemon --inetd`: no port has to be picked for git itself.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';

export class GitServer {
  readonly url: string;
  /** The commit the repository's main branch points at. */
  readonly sha: string;
  private readonly server: Server;
  private readonly dir: string;

  private constructor(server: Server, dir: string, sha: string) {
    this.server = server;
    this.dir = dir;
    this.sha = sha;
    this.url = `git://127.0.0.1:${(server.address() as AddressInfo).port}/project.git`;
  }

  /** A bare repository with one commit holding files (path -> content). */
  static async start(files: Record<string, string>): Promise<GitServer> {
    const dir = mkdtempSync(`${tmpdir()}/nsr-git-`);
    const work = `${dir}/work`;
    mkdirSync(work);
    const git = (args: string[], cwd = work) => execFileSync('git', args, { cwd, encoding: 'utf8', env: gitEnv }).trim();
    git(['init', '-q', '-b', 'main']);
    for (const [path, content] of Object.entries(files)) writeFileSync(`${work}/${path}`, content);
    git(['add', '.']);
    git(['commit', '-q', '-m', 'e2e sources']);
    const sha = git(['rev-parse', 'HEAD']);
    git(['clone', '-q', '--bare', work, `${dir}/project.git`], dir);
    const server = createServer((socket) => {
      const daemon = spawn('git', ['daemon', '--inetd', '--export-all', `--base-path=${dir}`, `${dir}/project.git`], {
        stdio: ['pipe', 'pipe', 'ignore'],
      });
      socket.pipe(daemon.stdin);
      daemon.stdout.pipe(socket);
      socket.on('error', () => daemon.kill());
      daemon.on('error', () => socket.destroy());
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return new GitServer(server, dir, sha);
  }

  async close(): Promise<void> {
    this.server.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const gitEnv = {
  ...process.env,
  GIT_AUTHOR_NAME: 'e2e', GIT_AUTHOR_EMAIL: 'e2e@example.invalid',
  GIT_COMMITTER_NAME: 'e2e', GIT_COMMITTER_EMAIL: 'e2e@example.invalid',
};
