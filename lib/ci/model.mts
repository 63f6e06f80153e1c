// The pipeline as exec sees it, once the YAML is read: plain typed data, no
// CiValue left. Types only.
import type { Expression } from './expression.mts';
import type { Variables } from './variables.mts';
import type { Position } from './yaml-source.mts';

export type When = 'on_success' | 'on_failure' | 'always' | 'manual' | 'delayed' | 'never';

/** allow_failure: false, true, or true only for some exit codes. */
export interface AllowFailure {
  allowed: boolean;
  exitCodes?: readonly number[];
}

export interface ImageSpec {
  /** As written, variables not yet expanded. */
  name: string;
  entrypoint?: readonly string[];
  pullPolicy?: readonly string[];
}

/** One of a job's services:, as written: expanded when the job runs, as gitlab-runner does. */
export interface ServiceDefinition {
  /** The image; variables not yet expanded. */
  name: string;
  /** One or more names, comma-separated; variables not yet expanded. */
  alias?: string;
  entrypoint?: readonly string[];
  command?: readonly string[];
  /** The service's own variables:, over the job's. */
  variables: Variables;
  pullPolicy?: readonly string[];
  at?: Position;
}

export interface NeedSpec {
  job: string;
  artifacts: boolean;
  optional: boolean;
  /** needs: parallel: matrix: only these instances of a matrix job. */
  matrix?: ReadonlyArray<Readonly<Record<string, string>>>;
  at?: Position;
}

export type ArtifactsWhen = 'on_success' | 'on_failure' | 'always';

export interface ArtifactsSpec {
  paths: readonly string[];
  exclude: readonly string[];
  untracked: boolean;
  when: ArtifactsWhen;
  /** reports: dotenv files: their variables go to later jobs. */
  dotenv: readonly string[];
}

export interface CacheSpec {
  key: string | { files: readonly string[]; prefix?: string };
  paths: readonly string[];
  untracked: boolean;
  policy: 'pull' | 'push' | 'pull-push';
  when: ArtifactsWhen;
  fallbackKeys: readonly string[];
}

export interface RuleSpec {
  if?: { text: string; expression: Expression };
  changes?: { paths: readonly string[]; compareTo?: string };
  exists?: readonly string[];
  when?: When;
  allowFailure?: AllowFailure;
  variables: Variables;
  needs?: readonly NeedSpec[];
  at?: Position;
}

export interface OnlyExceptSpec {
  refs?: readonly string[];
  variables?: ReadonlyArray<{ text: string; expression: Expression }>;
  changes?: readonly string[];
  at?: Position;
}

export type ParallelSpec = { total: number } | { matrix: ReadonlyArray<ReadonlyArray<readonly [string, readonly string[]]>> };

/** One job of the YAML, with extends, default and inherit applied. */
export interface JobDefinition {
  name: string;
  at: Position | undefined;
  stage: string;
  beforeScript: readonly string[];
  script: readonly string[];
  afterScript: readonly string[];
  image?: ImageSpec;
  services: readonly ServiceDefinition[];
  /** The job's own variables; the global ones it inherits are in inheritedVariables. */
  variables: Variables;
  inheritedVariables: Variables;
  when: When;
  allowFailure: AllowFailure;
  rules?: readonly RuleSpec[];
  only?: OnlyExceptSpec;
  except?: OnlyExceptSpec;
  needs?: readonly NeedSpec[];
  dependencies?: readonly string[];
  artifacts?: ArtifactsSpec;
  cache: readonly CacheSpec[];
  parallel?: ParallelSpec;
  timeoutSeconds?: number;
  environment?: string;
  /** A trigger job starts a downstream pipeline: nothing to run here. */
  trigger: boolean;
}

/** A job of the pipeline: one instance of a definition (parallel jobs have several). */
export interface CiJob {
  name: string;
  definition: JobDefinition;
  stage: string;
  stageIndex: number;
  when: When;
  allowFailure: AllowFailure;
  /** The YAML's variables for this job, lowest precedence first: inherited, job, matrix, rule. */
  variables: Variables;
  /** CI_JOB_NAME, CI_JOB_STAGE, CI_NODE_INDEX, ... */
  predefined: Readonly<Record<string, string>>;
  /** Resolved names; undefined without needs: (the job waits for every earlier stage). */
  needs?: ReadonlyArray<{ job: string; artifacts: boolean; optional: boolean }>;
  /** Jobs whose artifacts it receives. */
  dependencies: readonly string[];
}

export interface Pipeline {
  stages: readonly string[];
  jobs: readonly CiJob[];
  /** Global variables of the YAML (workflow rule variables included). */
  variables: Variables;
  /** Set when workflow: rules keep the pipeline from running. */
  workflowBlocked?: string;
  /** Unsupported keys and includes, in the order met. */
  warnings: readonly string[];
}
