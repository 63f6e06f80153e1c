import { createRequire as __nrCreateRequire } from 'node:module'; const require = __nrCreateRequire(import.meta.url);

// lib/log.mts
import { writeSync } from "node:fs";
var ranks = { error: 0, warn: 1, info: 2, verbose: 3, debug: 4 };
var threshold = ranks.info;
var pause = new Int32Array(new SharedArrayBuffer(4));
function writeAll(fd, data, write = writeSync) {
  let buffer = typeof data === "string" ? Buffer.from(data) : data;
  let waitMs = 0;
  while (buffer.length > 0) {
    try {
      buffer = buffer.subarray(write(fd, buffer));
      waitMs = 0;
    } catch (error) {
      const code = error.code;
      if (code === "EPIPE") return;
      if (code !== "EAGAIN") throw error;
      waitMs = Math.min(waitMs * 2 || 1, 20);
      Atomics.wait(pause, 0, 0, waitMs);
    }
  }
}

// scripts/nspawn-runner.mts
var commands = {
  "gitlab-config": { summary: "config_exec: print the executor configuration JSON", file: "config" },
  prepare: { summary: "prepare_exec: start a machine for a CI job", file: "prepare" },
  run: { summary: "run_exec: run a stage script inside the job's machine", file: "run" },
  cleanup: { summary: "cleanup_exec: stop the job's machine and remove its traces", file: "cleanup" },
  toml: { summary: "print a [[runners]] section for /etc/gitlab-runner/config.toml", file: "toml" },
  "chroot-create": { summary: "bootstrap a Debian image, then apply its playbook", file: "chroot-create" },
  "chroot-login": { summary: "a root shell (or a command) in an image, to change it by hand", file: "chroot-login" },
  "chroot-list": { summary: "list images: storage, size, maintenance, playbook, jobs (--json)", file: "chroot-list" },
  "chroot-remove": { summary: "remove an image and its versions", file: "chroot-remove" },
  "chroot-maintenance": { summary: "create, recreate or update images from their playbooks", file: "chroot-maintenance" },
  shell: { summary: "a throw-away copy of an image for a person, as themselves (via sudo)", file: "shell" },
  "ssh-units": { summary: "write socket/service units: an ephemeral machine per ssh connection", file: "ssh-units" },
  "ssh-session": { summary: "one ssh connection's machine (started by the ssh-units service)", file: "ssh-session" },
  status: { summary: "list the jobs and their machines", file: "status" },
  gc: { summary: "remove what crashed jobs left behind", file: "gc" },
  "sample-job": { summary: "run a sample CI job through every stage, as gitlab-runner would", file: "sample-job" }
};
var aliases = { config: "gitlab-config" };
var valued = /* @__PURE__ */ new Set(["--root", "--config", "--backend", "--host"]);
var argv = process.argv.slice(2);
var index = 0;
while (index < argv.length && argv[index].startsWith("-")) index += valued.has(argv[index]) ? 2 : 1;
var given = argv[index];
var name = given && (aliases[given] ?? given);
if (!name || !(name in commands)) {
  const rows = Object.entries(commands).map(([command, { summary }]) => `  ${command.padEnd(20)} ${summary}`);
  const text = `usage: nspawn-runner [-v|--verbose] [--debug] COMMAND [args]

commands:
${rows.join("\n")}

Run "nspawn-runner COMMAND --help" for a command's options.
`;
  const asked = argv.includes("-h") || argv.includes("--help");
  writeAll(asked ? 1 : 2, given ? `nspawn-runner: unknown command "${given}"

${text}` : text);
  process.exit(asked && !given ? 0 : 2);
}
process.argv = [process.argv[0], name, ...argv.slice(0, index), ...argv.slice(index + 1)];
await import(new URL(`./${commands[name].file}.mjs`, import.meta.url).href);
