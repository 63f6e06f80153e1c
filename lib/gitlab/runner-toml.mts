// The [[runners]] section an admin pastes into /etc/gitlab-runner/config.toml.
// Built as data and written with a TOML library, so it always parses back.
import { buildsDir, cacheDir, type Settings } from '../settings.mts';

export interface RunnerTomlOptions {
  /** Absolute path of bin/nspawn-runner in this installation. */
  executable: string;
  defaultImage: string;
  /** Arguments every stage gets, such as --root when the state directory is not the default. */
  globalArgs: string[];
}

export function buildRunnerToml(settings: Settings, options: RunnerTomlOptions) {
  const stage = (...args: string[]) => [...options.globalArgs, ...args];
  return {
    runners: [{
      name: 'nspawn-runner',
      url: 'https://gitlab.example.com/',
      token: 'REPLACE-WITH-RUNNER-AUTHENTICATION-TOKEN',
      executor: 'custom',
      builds_dir: buildsDir(settings),
      cache_dir: cacheDir(settings),
      custom: {
        config_exec: options.executable,
        config_args: stage('gitlab-config'),
        config_exec_timeout: 60,
        prepare_exec: options.executable,
        prepare_args: stage('prepare', `--default-image=${options.defaultImage}`),
        // Starting a machine takes well under a second; a minute covers a loaded host.
        prepare_exec_timeout: 120,
        run_exec: options.executable,
        run_args: stage('run'),
        cleanup_exec: options.executable,
        cleanup_args: stage('cleanup'),
        cleanup_exec_timeout: 120,
        // A cancelled stage gets this long after SIGTERM before SIGKILL.
        graceful_kill_timeout: 30,
        force_kill_timeout: 30,
      },
    }],
  };
}
