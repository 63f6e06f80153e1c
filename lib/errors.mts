// Typed errors: lib throws, only cli.main() turns them into exit codes.
// gitlab-runner tells a failed job (BUILD_FAILURE_EXIT_CODE) from a broken
// runner (SYSTEM_FAILURE_EXIT_CODE) by the exit code alone, so the class of
// an error decides how GitLab reports it.

export type FailureKind = 'job' | 'system';

export class RunnerError extends Error {
  readonly kind: FailureKind;
  readonly hint: string | undefined;

  constructor(kind: FailureKind, message: string, hint?: string) {
    super(message);
    this.kind = kind;
    this.hint = hint;
  }
}

/** The job's own fault: a bad image name, a missing image, a failing script. Not retried. */
export class JobError extends RunnerError {
  constructor(message: string, hint?: string) {
    super('job', message, hint);
    this.name = 'JobError';
  }
}

/** The host's or the executor's fault: missing binary, no root, machine gone. */
export class SystemError extends RunnerError {
  constructor(message: string, hint?: string) {
    super('system', message, hint);
    this.name = 'SystemError';
  }
}

/** A job script that ran and failed: carries the script's own exit code. */
export class ScriptFailed extends JobError {
  readonly exitCode: number;

  constructor(exitCode: number, message: string) {
    super(message);
    this.exitCode = exitCode;
    this.name = 'ScriptFailed';
  }
}

/** Wrong command-line usage: always an operator's mistake, reported like a system failure. */
export class UsageError extends SystemError {
  constructor(message: string) {
    super(message, 'see --help');
    this.name = 'UsageError';
  }
}
