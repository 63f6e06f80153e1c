import { createRequire as __nrCreateRequire } from 'node:module'; const require = __nrCreateRequire(import.meta.url);
var __create = Object.create;
var __defProp = Object.defineProperty;
var __getOwnPropDesc = Object.getOwnPropertyDescriptor;
var __getOwnPropNames = Object.getOwnPropertyNames;
var __getProtoOf = Object.getPrototypeOf;
var __hasOwnProp = Object.prototype.hasOwnProperty;
var __commonJS = (cb, mod) => function __require() {
  try {
    return mod || (0, cb[__getOwnPropNames(cb)[0]])((mod = { exports: {} }).exports, mod), mod.exports;
  } catch (e) {
    throw mod = 0, e;
  }
};
var __copyProps = (to, from, except, desc) => {
  if (from && typeof from === "object" || typeof from === "function") {
    for (let key of __getOwnPropNames(from))
      if (!__hasOwnProp.call(to, key) && key !== except)
        __defProp(to, key, { get: () => from[key], enumerable: !(desc = __getOwnPropDesc(from, key)) || desc.enumerable });
  }
  return to;
};
var __toESM = (mod, isNodeMode, target) => (target = mod != null ? __create(__getProtoOf(mod)) : {}, __copyProps(
  // If the importer is in node compatibility mode or this is not an ESM
  // file that has been converted to a CommonJS file using a Babel-
  // compatible transform (i.e. "__esModule" has not been set), then set
  // "default" to the CommonJS "module.exports" for node compatibility.
  isNodeMode || !mod || !mod.__esModule ? __defProp(target, "default", { value: mod, enumerable: true }) : target,
  mod
));

// node_modules/minimist/index.js
var require_minimist = __commonJS({
  "node_modules/minimist/index.js"(exports, module) {
    "use strict";
    function hasKey(obj, keys) {
      var o = obj;
      keys.slice(0, -1).forEach(function(key2) {
        o = o[key2] || {};
      });
      var key = keys[keys.length - 1];
      return key in o;
    }
    function isNumber(x) {
      if (typeof x === "number") {
        return true;
      }
      if (/^0x[0-9a-f]+$/i.test(x)) {
        return true;
      }
      return /^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(e[-+]?\d+)?$/.test(x);
    }
    function isConstructorOrProto(obj, key) {
      return key === "constructor" && typeof obj[key] === "function" || key === "__proto__";
    }
    module.exports = function(args2, opts) {
      if (!opts) {
        opts = {};
      }
      var flags = {
        bools: {},
        strings: {},
        unknownFn: null
      };
      if (typeof opts.unknown === "function") {
        flags.unknownFn = opts.unknown;
      }
      if (typeof opts.boolean === "boolean" && opts.boolean) {
        flags.allBools = true;
      } else {
        [].concat(opts.boolean).filter(Boolean).forEach(function(key2) {
          flags.bools[key2] = true;
        });
      }
      var aliases = {};
      function aliasIsBoolean(key2) {
        return aliases[key2].some(function(x) {
          return flags.bools[x];
        });
      }
      Object.keys(opts.alias || {}).forEach(function(key2) {
        aliases[key2] = [].concat(opts.alias[key2]);
        aliases[key2].forEach(function(x) {
          aliases[x] = [key2].concat(aliases[key2].filter(function(y) {
            return x !== y;
          }));
        });
      });
      [].concat(opts.string).filter(Boolean).forEach(function(key2) {
        flags.strings[key2] = true;
        if (aliases[key2]) {
          [].concat(aliases[key2]).forEach(function(k) {
            flags.strings[k] = true;
          });
        }
      });
      var defaults = opts.default || {};
      var argv = { _: [] };
      function argDefined(key2, arg2) {
        return flags.allBools && /^--[^=]+$/.test(arg2) || flags.strings[key2] || flags.bools[key2] || aliases[key2];
      }
      function setKey(obj, keys, value2) {
        var o = obj;
        for (var i2 = 0; i2 < keys.length - 1; i2++) {
          var key2 = keys[i2];
          if (isConstructorOrProto(o, key2)) {
            return;
          }
          if (o[key2] === void 0) {
            o[key2] = {};
          }
          if (o[key2] === Object.prototype || o[key2] === Number.prototype || o[key2] === String.prototype) {
            o[key2] = {};
          }
          if (o[key2] === Array.prototype) {
            o[key2] = [];
          }
          o = o[key2];
        }
        var lastKey = keys[keys.length - 1];
        if (isConstructorOrProto(o, lastKey)) {
          return;
        }
        if (o === Object.prototype || o === Number.prototype || o === String.prototype) {
          o = {};
        }
        if (o === Array.prototype) {
          o = [];
        }
        if (o[lastKey] === void 0 || flags.bools[lastKey] || typeof o[lastKey] === "boolean") {
          o[lastKey] = value2;
        } else if (Array.isArray(o[lastKey])) {
          o[lastKey].push(value2);
        } else {
          o[lastKey] = [o[lastKey], value2];
        }
      }
      function setArg(key2, val, arg2) {
        if (arg2 && flags.unknownFn && !argDefined(key2, arg2)) {
          if (flags.unknownFn(arg2) === false) {
            return;
          }
        }
        var value2 = !flags.strings[key2] && isNumber(val) ? Number(val) : val;
        setKey(argv, key2.split("."), value2);
        (aliases[key2] || []).forEach(function(x) {
          setKey(argv, x.split("."), value2);
        });
      }
      Object.keys(flags.bools).forEach(function(key2) {
        setArg(key2, defaults[key2] === void 0 ? false : defaults[key2]);
      });
      var notFlags = [];
      if (args2.indexOf("--") !== -1) {
        notFlags = args2.slice(args2.indexOf("--") + 1);
        args2 = args2.slice(0, args2.indexOf("--"));
      }
      for (var i = 0; i < args2.length; i++) {
        var arg = args2[i];
        var key;
        var next;
        if (/^--.+=/.test(arg)) {
          var m = arg.match(/^--([^=]+)=([\s\S]*)$/);
          key = m[1];
          var value = m[2];
          if (flags.bools[key]) {
            value = value !== "false";
          }
          setArg(key, value, arg);
        } else if (/^--no-.+/.test(arg)) {
          key = arg.match(/^--no-(.+)/)[1];
          setArg(key, false, arg);
        } else if (/^--.+/.test(arg)) {
          key = arg.match(/^--(.+)/)[1];
          next = args2[i + 1];
          if (next !== void 0 && !/^(-|--)[^-]/.test(next) && !flags.bools[key] && !flags.allBools && (aliases[key] ? !aliasIsBoolean(key) : true)) {
            setArg(key, next, arg);
            i += 1;
          } else if (/^(true|false)$/.test(next)) {
            setArg(key, next === "true", arg);
            i += 1;
          } else {
            setArg(key, flags.strings[key] ? "" : true, arg);
          }
        } else if (/^-[^-]+/.test(arg)) {
          var letters = arg.slice(1, -1).split("");
          var broken = false;
          for (var j = 0; j < letters.length; j++) {
            next = arg.slice(j + 2);
            if (next === "-") {
              setArg(letters[j], next, arg);
              continue;
            }
            if (/[A-Za-z]/.test(letters[j]) && next[0] === "=") {
              setArg(letters[j], next.slice(1), arg);
              broken = true;
              break;
            }
            if (/[A-Za-z]/.test(letters[j]) && /-?\d+(\.\d*)?(e-?\d+)?$/.test(next)) {
              setArg(letters[j], next, arg);
              broken = true;
              break;
            }
            if (letters[j + 1] && letters[j + 1].match(/\W/)) {
              setArg(letters[j], arg.slice(j + 2), arg);
              broken = true;
              break;
            } else {
              setArg(letters[j], flags.strings[letters[j]] ? "" : true, arg);
            }
          }
          key = arg.slice(-1)[0];
          if (!broken && key !== "-") {
            if (args2[i + 1] && !/^(-|--)[^-]/.test(args2[i + 1]) && !flags.bools[key] && (aliases[key] ? !aliasIsBoolean(key) : true)) {
              setArg(key, args2[i + 1], arg);
              i += 1;
            } else if (args2[i + 1] && /^(true|false)$/.test(args2[i + 1])) {
              setArg(key, args2[i + 1] === "true", arg);
              i += 1;
            } else {
              setArg(key, flags.strings[key] ? "" : true, arg);
            }
          }
        } else {
          if (!flags.unknownFn || flags.unknownFn(arg) !== false) {
            argv._.push(flags.strings._ || !isNumber(arg) ? arg : Number(arg));
          }
          if (opts.stopEarly) {
            argv._.push.apply(argv._, args2.slice(i + 1));
            break;
          }
        }
      }
      Object.keys(defaults).forEach(function(k) {
        if (!hasKey(argv, k.split("."))) {
          setKey(argv, k.split("."), defaults[k]);
          (aliases[k] || []).forEach(function(x) {
            setKey(argv, x.split("."), defaults[k]);
          });
        }
      });
      if (opts["--"]) {
        argv["--"] = notFlags.slice();
      } else {
        notFlags.forEach(function(k) {
          argv._.push(k);
        });
      }
      return argv;
    };
  }
});

// bench/bench.mts
var import_minimist = __toESM(require_minimist(), 1);
import { execFileSync as execFileSync2, spawnSync } from "node:child_process";
import { mkdirSync as mkdirSync2, mkdtempSync, rmSync, writeFileSync as writeFileSync2 } from "node:fs";
import { tmpdir } from "node:os";
import { fileURLToPath as fileURLToPath2 } from "node:url";

// lib/btrfs.mts
import { statSync, statfsSync } from "node:fs";

// lib/exec.mts
import { spawn } from "node:child_process";

// lib/errors.mts
var RunnerError = class extends Error {
  kind;
  hint;
  constructor(kind, message, hint) {
    super(message);
    this.kind = kind;
    this.hint = hint;
  }
};
var SystemError = class extends RunnerError {
  constructor(message, hint) {
    super("system", message, hint);
    this.name = "SystemError";
  }
};

// lib/log.mts
import { writeSync } from "node:fs";
var ranks = { error: 0, warn: 1, info: 2, verbose: 3, debug: 4 };
var threshold = ranks.info;
function emit(level, prefix, message) {
  if (ranks[level] > threshold) return;
  writeAll(2, `${prefix}${message}
`);
}
var log = {
  error: (message) => emit("error", "nspawn-runner: error: ", message),
  warn: (message) => emit("warn", "nspawn-runner: warning: ", message),
  info: (message) => emit("info", "nspawn-runner: ", message),
  verbose: (message) => emit("verbose", "nspawn-runner: ", message),
  debug: (message) => emit("debug", "nspawn-runner: debug: ", message)
};
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

// lib/exec.mts
var packageOf = {
  "systemd-nspawn": "systemd-container",
  machinectl: "systemd-container",
  "systemd-run": "systemd",
  systemctl: "systemd",
  journalctl: "systemd",
  nsenter: "util-linux",
  unshare: "util-linux",
  debootstrap: "debootstrap",
  mmdebstrap: "mmdebstrap",
  btrfs: "btrfs-progs",
  "ansible-playbook": "ansible-core",
  eatmydata: "eatmydata"
};
function shellQuote(word) {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
function shellJoin(argv) {
  return argv.map(shellQuote).join(" ");
}
function missingBinaryError(binary) {
  const pkg = packageOf[binary];
  return new SystemError(`${binary} not found`, pkg ? `install the Debian package ${pkg}` : `install ${binary}`);
}
function run(argv, options = {}) {
  log.debug(`+ ${shellJoin(argv)}`);
  const stdio = options.stdio ?? [options.input === void 0 ? "ignore" : "pipe", "pipe", "pipe"];
  const spawnOptions = { env: options.env ?? process.env, cwd: options.cwd, stdio };
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), spawnOptions);
    let stdout = "";
    let stderr = "";
    child.stdout?.setEncoding("utf8").on("data", (chunk) => stdout += chunk);
    child.stderr?.setEncoding("utf8").on("data", (chunk) => stderr += chunk);
    if (options.input !== void 0) child.stdin?.end(options.input);
    child.on("error", (error) => reject(error.code === "ENOENT" ? missingBinaryError(argv[0]) : error));
    child.on("close", (code, signal) => resolve({ code: code ?? 128, signal, stdout, stderr }));
  });
}
async function check(argv, options = {}) {
  const result = await run(argv, options);
  if (result.code !== 0 || result.signal) {
    const detail = result.stderr.trim().split("\n").slice(-3).join(" / ");
    const how = result.signal ? `was killed by ${result.signal}` : `exited with ${result.code}`;
    throw new SystemError(`${argv[0]} ${how}${detail ? `: ${detail}` : ""}`);
  }
  return result;
}

// lib/btrfs.mts
var BTRFS_SUPER_MAGIC = 2435016766;
function isBtrfs(path) {
  return statfsSync(path).type === BTRFS_SUPER_MAGIC;
}
async function createSubvolume(path) {
  await check(["btrfs", "-q", "subvolume", "create", "--", path]);
}

// test/support/images.mts
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";

// test/support/runner.mts
import { fileURLToPath } from "node:url";
var repoRoot = fileURLToPath(new URL("../..", import.meta.url)).replace(/\/$/, "");
var executable = `${repoRoot}/bin/nspawn-runner`;

// test/support/test-cache.mts
var testCache = process.env.NSPAWN_RUNNER_TEST_CACHE || "/var/cache/nspawn-runner-tests";

// test/support/images.mts
function makeBusyboxImage(dir) {
  for (const sub of ["bin", "usr/bin", "etc", "tmp", "root", "proc", "sys", "dev", "run", "var/tmp"]) {
    mkdirSync(`${dir}/${sub}`, { recursive: true });
  }
  copyFileSync("/bin/busybox", `${dir}/bin/busybox`);
  const applets = execFileSync("/bin/busybox", ["--list"], { encoding: "utf8" }).split("\n").filter(Boolean);
  for (const applet of applets) {
    if (applet !== "busybox" && !existsSync(`${dir}/bin/${applet}`)) symlinkSync("busybox", `${dir}/bin/${applet}`);
  }
  writeFileSync(`${dir}/bin/bash`, '#!/bin/sh\nexec /bin/sh "$@"\n', { mode: 493 });
  writeFileSync(`${dir}/etc/os-release`, 'ID=busybox\nPRETTY_NAME="busybox test image"\n');
  writeFileSync(`${dir}/etc/passwd`, "root:x:0:0:root:/root:/bin/sh\n");
  writeFileSync(`${dir}/etc/group`, "root:x:0:\n");
  return dir;
}
var debianRoot = `${testCache}/state`;
var sshRoot = `${testCache}/ssh-state`;

// bench/bench.mts
var args = (0, import_minimist.default)(process.argv.slice(2), { string: ["runs", "backends"], boolean: ["help"] });
if (args.help) {
  process.stdout.write("usage: npm run bench -- [--runs N] [--backends overlay,tmpfs,btrfs]\nTimes config, prepare, run (script `true`) and cleanup against the raw nspawn/nsenter floor.\n");
  process.exit(0);
}
var runs = Number(args.runs ?? 15);
var backends = String(args.backends ?? "overlay,tmpfs,btrfs").split(",");
var executable2 = fileURLToPath2(new URL("../bin/nspawn-runner", import.meta.url));
function timed(argv, env = process.env) {
  const start = process.hrtime.bigint();
  const result = spawnSync(argv[0], argv.slice(1), { env, stdio: ["ignore", "ignore", "pipe"] });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.status !== 0) throw new Error(`${argv.join(" ")} failed: ${result.stderr}`);
  return ms;
}
function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}
function leaderOf(root, jobId) {
  const record = JSON.parse(execFileSync2("cat", [`${root}/.jobs/${jobId}/job.json`], { encoding: "utf8" }));
  return record.leaderPid;
}
function measureFloor(root) {
  const node = [];
  const nspawn = [];
  const nsenter = [];
  const upper = `${root}/.floor-upper`;
  const image = `${root}/busybox`;
  const env = { ...process.env, CUSTOM_ENV_CI_JOB_ID: "floor" };
  timed([executable2, "--root", root, "prepare", "busybox"], env);
  const leader = leaderOf(root, "floor");
  for (let i = 0; i < runs; i++) {
    node.push(timed(["node", "-e", "0"]));
    rmSync(upper, { recursive: true, force: true });
    mkdirSync2(upper);
    nspawn.push(timed([
      "systemd-nspawn",
      "--quiet",
      "--register=no",
      "--keep-unit",
      `--directory=${image}`,
      `--overlay=${image}:${upper}:/`,
      "--console=pipe",
      "--",
      "true"
    ]));
    nsenter.push(timed(["nsenter", `--target=${leader}`, "--all", "--root", "--wd", "--", "true"]));
  }
  timed([executable2, "--root", root, "cleanup"], env);
  rmSync(upper, { recursive: true, force: true });
  return [
    { name: "node -e 0", ms: median(node) },
    { name: "systemd-nspawn true (overlay)", ms: median(nspawn) },
    { name: "nsenter true", ms: median(nsenter) }
  ];
}
function measureStages(root, backend) {
  const script = `${root}/.true.sh`;
  writeFileSync2(script, "true\n");
  const times = { config: [], prepare: [], run: [], cleanup: [] };
  for (let i = 0; i < runs; i++) {
    const env = { ...process.env, CUSTOM_ENV_CI_JOB_ID: `bench-${i}`, BUILD_FAILURE_EXIT_CODE: "1", SYSTEM_FAILURE_EXIT_CODE: "2" };
    const base = [executable2, "--root", root, "--backend", backend];
    times.config.push(timed([...base, "gitlab-config"], env));
    times.prepare.push(timed([...base, "prepare", "busybox"], env));
    times.run.push(timed([...base, "run", script, "build_script"], env));
    times.cleanup.push(timed([...base, "cleanup"], env));
  }
  return Object.entries(times).map(([name, values]) => ({ name: `${backend}: ${name}`, ms: median(values) }));
}
var work = mkdtempSync(`${tmpdir()}/nsr-bench-`);
var loop;
try {
  const roots = {};
  const plain = `${work}/state`;
  mkdirSync2(plain);
  makeBusyboxImage(`${plain}/busybox`);
  roots.overlay = roots.tmpfs = plain;
  if (backends.includes("btrfs")) {
    loop = `${work}/btrfs`;
    mkdirSync2(`${loop}/mnt`, { recursive: true });
    execFileSync2("truncate", ["-s", "1G", `${loop}/fs.img`]);
    execFileSync2("mkfs.btrfs", ["-q", `${loop}/fs.img`], { stdio: "ignore" });
    execFileSync2("mount", ["-o", "loop", `${loop}/fs.img`, `${loop}/mnt`]);
    if (isBtrfs(`${loop}/mnt`)) await createSubvolume(`${loop}/mnt/busybox`);
    makeBusyboxImage(`${loop}/mnt/busybox`);
    roots.btrfs = `${loop}/mnt`;
  }
  const floor = measureFloor(plain);
  const stages = backends.flatMap((backend) => measureStages(roots[backend], backend));
  const floorOf = Object.fromEntries(floor.map((row) => [row.name, row.ms]));
  const nodeFloor = floorOf["node -e 0"];
  const ratioBase = {
    config: nodeFloor,
    prepare: nodeFloor + floorOf["systemd-nspawn true (overlay)"],
    run: nodeFloor + floorOf["nsenter true"],
    cleanup: nodeFloor
  };
  const lines = [`nspawn-runner bench: medians of ${runs} runs, busybox image, ${(/* @__PURE__ */ new Date()).toISOString()}`, "", "floor:"];
  for (const row of floor) lines.push(`  ${row.name.padEnd(34)} ${row.ms.toFixed(1).padStart(7)} ms`);
  lines.push("", "stages (ratio against node -e 0 + the matching raw command):");
  for (const row of stages) {
    const stage = row.name.split(": ")[1];
    lines.push(`  ${row.name.padEnd(34)} ${row.ms.toFixed(1).padStart(7)} ms   ${(row.ms / ratioBase[stage]).toFixed(2)}x`);
  }
  process.stdout.write(`${lines.join("\n")}
`);
} finally {
  if (loop) spawnSync("umount", ["--lazy", `${loop}/mnt`]);
  rmSync(work, { recursive: true, force: true });
}
