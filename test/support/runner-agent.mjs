// Runs inside the systemd test host as a stand-in for gitlab-runner: a
// long-lived service that starts nspawn-runner commands on request, so they
// have what gitlab-runner gives them - a live parent (crash recovery treats a
// job whose owner died as orphaned) and the service's cgroup.
// Protocol, one connection per command: a JSON line {argv, env} in; JSON lines
// {stdout} / {stderr} and finally {code, ms} out, ms being the command's wall
// time from spawn to exit as this side saw it (what the benchmark times).
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { constants } from 'node:os';

const socketPath = process.argv[2];
rmSync(socketPath, { force: true });
createServer((connection) => {
  let request = '';
  let started = false;
  connection.setEncoding('utf8');
  const send = (message) => connection.write(`${JSON.stringify(message)}\n`);
  connection.on('data', (chunk) => {
    if (started) return;
    request += chunk;
    const end = request.indexOf('\n');
    if (end < 0) return;
    started = true;
    const { argv, env } = JSON.parse(request.slice(0, end));
    const start = process.hrtime.bigint();
    const child = spawn(argv[0], argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.setEncoding('utf8').on('data', (text) => send({ stdout: text }));
    child.stderr.setEncoding('utf8').on('data', (text) => send({ stderr: text }));
    child.on('error', (error) => connection.end(`${JSON.stringify({ stderr: String(error), code: 127 })}\n`));
    child.on('close', (code, signal) => {
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      connection.end(`${JSON.stringify({ code: code ?? 128 + constants.signals[signal], ms })}\n`);
    });
  });
}).listen(socketPath);
